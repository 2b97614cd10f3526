"""A custom layer written for standalone Keras 2, as such files usually are: `keras`, not `tf_keras`.

With a Keras 2 .h5 file, `tfwizard convert --custom-objects keras2_layers.py --trust-model` runs
this with `keras` resolving to tf_keras. (sample_models/custom.py builds keras2_scale.h5 with it.)
"""
import keras.backend as K
from keras.layers import Layer


class ScaleShift(Layer):
    """tanh(x * scale + shift), with a trained scale and shift per feature."""

    def build(self, input_shape):
        self.scale = self.add_weight(name="scale", shape=(input_shape[-1],), initializer="ones")
        self.shift = self.add_weight(name="shift", shape=(input_shape[-1],), initializer="zeros")
        super().build(input_shape)

    def call(self, x):
        return K.tanh(x * self.scale + self.shift)

    def compute_output_shape(self, input_shape):
        return input_shape
