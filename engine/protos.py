"""TensorFlow protobuf classes without importing TensorFlow.

tensorboard (installed with tensorflow) ships the generated GraphDef/MetaGraphDef
classes under tensorboard.compat.proto; importing them takes ~40 ms, against ~10 s
for `import tensorflow`. SavedModel itself is missing there, so we build that
two-field message from its descriptor.
"""

from functools import cache

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format
from google.protobuf.message import DecodeError
from tensorboard.compat.proto import graph_pb2, meta_graph_pb2, types_pb2

GraphDef = graph_pb2.GraphDef
MetaGraphDef = meta_graph_pb2.MetaGraphDef

__all__ = ["DecodeError", "GraphDef", "MetaGraphDef", "dtype_name", "saved_model_class", "text_format"]


@cache
def saved_model_class():
    """tensorflow/core/protobuf/saved_model.proto: schema version + repeated MetaGraphDef.

    Wire-compatible with TensorFlow's; it lives in tensorboard's package like its field types.
    """
    pool = descriptor_pool.Default()
    name = "tfwizard/saved_model.proto"
    try:
        return message_factory.GetMessageClass(pool.FindMessageTypeByName("tensorboard.SavedModel"))
    except KeyError:
        pass
    f = descriptor_pb2.FileDescriptorProto(name=name, package="tensorboard", syntax="proto3")
    f.dependency.append(meta_graph_pb2.DESCRIPTOR.name)
    m = f.message_type.add(name="SavedModel")
    m.field.add(name="saved_model_schema_version", number=1, type=3, label=1)  # int64
    m.field.add(name="meta_graphs", number=2, type=11, label=3, type_name=".tensorboard.MetaGraphDef")
    pool.Add(f)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("tensorboard.SavedModel"))


_DTYPES = {
    "DT_FLOAT": "float32", "DT_DOUBLE": "float64", "DT_HALF": "float16", "DT_BFLOAT16": "bfloat16",
    "DT_INT8": "int8", "DT_INT16": "int16", "DT_INT32": "int32", "DT_INT64": "int64",
    "DT_UINT8": "uint8", "DT_UINT16": "uint16", "DT_UINT32": "uint32", "DT_UINT64": "uint64",
    "DT_BOOL": "bool", "DT_STRING": "string", "DT_COMPLEX64": "complex64",
    "DT_COMPLEX128": "complex128", "DT_RESOURCE": "resource", "DT_VARIANT": "variant",
}


def dtype_name(enum_value: int) -> str:
    """DataType enum → the numpy-style name people know ("float32")."""
    try:
        name = types_pb2.DataType.Name(enum_value)
    except ValueError:
        return f"dtype{enum_value}"
    name = name.removesuffix("_REF")
    return _DTYPES.get(name, name.removeprefix("DT_").lower())
