"""Every weight buffer inside the flatbuffer: the .tflite form every TFLite runtime reads.

litert-torch writes some models (the fp16 ones) with their weights after the flatbuffer (`Buffer.offset`/`size`
into the file). The TFLite C API library of ai-edge-litert 1.4.0 (the aarch64 benchmark_model's runtime) builds the
interpreter without the model's allocation, so those tensors get no data ("Input tensor N lacks data") although its
Python interpreter reads the same file. So the TFLite target moves such weights inside right after converting
(`inline_in_place`; the same tensors and bytes, 16-byte aligned as the converter aligns them) while the file stays
under the flatbuffer's 2 GiB limit, and `python -m effvit_deploy.export.targets.tflite.inline IN OUT` does it for a
file exported before.
"""

from __future__ import annotations

from pathlib import Path

import flatbuffers
import numpy as np

from effvit_deploy.fileio import atomic_write_bytes

_IDENTIFIER = b"TFL3"
_ALIGN = 16
_FLATBUFFER_LIMIT = 2**31 - 2**24  # a flatbuffer addresses < 2 GiB; keep room for the tables


def _has_external(data: bytes) -> bool:
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAsModel(data, 0)
    return any(model.Buffers(i).Offset() > 1 for i in range(model.BuffersLength()))


def has_external_buffers(path: Path) -> bool:
    """True when some buffer of the model lives outside the flatbuffer (offset > 1)."""
    return _has_external(Path(path).read_bytes())


def _inlined(data: bytes) -> tuple[bytes, int]:
    """The model in `data` with its external buffers moved inside, and how many moved."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(data, 0))
    moved = 0
    packed = []
    for buffer in model.buffers or []:
        if buffer.offset > 1:
            raw = data[buffer.offset:buffer.offset + buffer.size]
            moved += 1
        else:
            raw = b"" if buffer.data is None else np.asarray(buffer.data, np.uint8).tobytes()
        packed.append(_AlignedBuffer(raw, schema))
    model.buffers = packed
    builder = flatbuffers.Builder(len(data) + 4096)
    builder.Finish(model.Pack(builder), file_identifier=_IDENTIFIER)
    return bytes(builder.Output()), moved


def inline_buffers(src: Path, dst: Path) -> int:
    """Write `dst`: `src` with its external buffers moved inside (temp file, then rename); returns how many moved."""
    out, moved = _inlined(Path(src).read_bytes())
    atomic_write_bytes(dst, out)
    return moved


def inline_in_place(path: Path) -> bool:
    """Move `path`'s external buffers inside when it has some and fits one flatbuffer; True when it did."""
    if Path(path).stat().st_size >= _FLATBUFFER_LIMIT:
        return False
    data = Path(path).read_bytes()  # read and parsed once: this runs after every TFLite conversion
    if not _has_external(data):
        return False
    atomic_write_bytes(path, _inlined(data)[0])
    return True


class _AlignedBuffer:
    """Stands in for a BufferT in ModelT.Pack: its bytes as one 16-byte aligned vector (generated Pack: 1-byte)."""

    def __init__(self, raw: bytes, schema: object) -> None:
        self.raw, self.schema = raw, schema

    def Pack(self, builder: flatbuffers.Builder) -> int:  # noqa: N802 (the generated code's method name)
        vector = None
        if self.raw:
            builder.StartVector(1, len(self.raw), _ALIGN)
            builder.head -= len(self.raw)
            builder.Bytes[builder.head:builder.head + len(self.raw)] = self.raw
            vector = builder.EndVector(len(self.raw))
        s = self.schema
        s.BufferStart(builder)  # type: ignore[attr-defined]
        if vector is not None:
            s.BufferAddData(builder, vector)  # type: ignore[attr-defined]
        return s.BufferEnd(builder)  # type: ignore[attr-defined]


def main(argv: list[str] | None = None) -> int:
    """`python -m effvit_deploy.export.targets.tflite.inline IN.tflite OUT.tflite`: the inlined copy of a file exported
    before the export inlined (one error line and exit 2 on bad input)."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or not Path(args[0]).is_file() or Path(args[0]).resolve() == Path(args[1]).resolve():
        print("error: usage: python -m effvit_deploy.export.targets.tflite.inline IN.tflite OUT.tflite "
              "(an existing IN, another OUT)", file=sys.stderr)
        return 2
    try:
        moved = inline_buffers(Path(args[0]), Path(args[1]))
    except Exception as exc:  # not a .tflite flatbuffer (the generated reader raises anything)  # noqa: BLE001
        print(f"error: {args[0]} is not a readable .tflite ({type(exc).__name__}); pass a TFLite model",
              file=sys.stderr)
        return 2
    print(f"wrote {args[1]} ({moved} external buffer(s) moved inside)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
