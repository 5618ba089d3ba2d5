"""Message classes for the pprof ``profile.proto`` schema.

The classes live in a private descriptor pool built from the serialized
descriptor in ``_descriptor.py``, so they work with any protobuf runtime from
3.20 on and never collide with another library's copy of ``profile.proto``.
"""

from __future__ import annotations

from google.protobuf import descriptor_pb2, descriptor_pool

from profiler_core.pprof._descriptor import SERIALIZED

_POOL = descriptor_pool.DescriptorPool()
_POOL.Add(descriptor_pb2.FileDescriptorProto.FromString(SERIALIZED))


def _message_class(name: str) -> type:
    descriptor = _POOL.FindMessageTypeByName("perftools.profiles." + name)
    try:
        from google.protobuf.message_factory import GetMessageClass
    except ImportError:  # protobuf < 4.22
        from google.protobuf.message_factory import MessageFactory

        return MessageFactory(_POOL).GetPrototype(descriptor)
    return GetMessageClass(descriptor)


Profile = _message_class("Profile")
ValueType = _message_class("ValueType")
Sample = _message_class("Sample")
Label = _message_class("Label")
Mapping = _message_class("Mapping")
Location = _message_class("Location")
Line = _message_class("Line")
Function = _message_class("Function")
