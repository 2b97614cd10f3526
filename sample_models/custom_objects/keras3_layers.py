"""A custom layer and activation for Keras 3, registered under a package name as Keras 3 recommends.

`tfwizard convert keras3_scale.keras --custom-objects keras3_layers.py --trust-model` imports this
(which registers both) before Keras loads the model. (sample_models/custom.py builds the models.)
"""
import keras
from keras import ops


@keras.saving.register_keras_serializable(package="tfwizard_demo")
class ScaleShift(keras.layers.Layer):
    """tanh(x * scale + shift), with a trained scale and shift per feature."""

    def build(self, input_shape):
        self.scale = self.add_weight(name="scale", shape=(input_shape[-1],), initializer="ones")
        self.shift = self.add_weight(name="shift", shape=(input_shape[-1],), initializer="zeros")

    def call(self, x):
        return ops.tanh(x * self.scale + self.shift)


@keras.saving.register_keras_serializable(package="tfwizard_demo")
def scaled_swish(x):
    """An activation Keras does not have: 1.5 * x * sigmoid(x)."""
    return 1.5 * x * ops.sigmoid(x)
