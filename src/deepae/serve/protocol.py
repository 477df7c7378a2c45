"""The Open Inference Protocol (v2) on the wire: request bodies to NumPy arrays, arrays to
response bodies, in the JSON tensor form and the binary tensor data extension.

A request body is JSON, or with the ``Inference-Header-Content-Length: L`` header, L bytes
of JSON followed by the raw bytes of every input whose ``parameters`` hold
``binary_data_size``, in the order of the inputs. Fixed-size types are little-endian and
row-major; a BYTES tensor is each element's 4-byte little-endian length, then its bytes.
Every size that the body declares is checked against the bytes actually there before any
array is made.
"""

from __future__ import annotations

import json
import math
import numbers
import struct
import sys
from dataclasses import dataclass, field

import numpy as np

__all__ = ["DATATYPES", "InferenceError", "InferRequest", "Tensor", "parse_request",
           "encode_response", "datatype_of"]

# v2 datatype -> NumPy dtype (little-endian); BYTES is an object array of bytes
DATATYPES = {
    "BOOL": np.dtype(np.bool_), "UINT8": np.dtype("<u1"), "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"), "UINT64": np.dtype("<u8"), "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"), "INT32": np.dtype("<i4"), "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"), "FP32": np.dtype("<f4"), "FP64": np.dtype("<f8"),
    "BYTES": np.dtype(object),
}
HEADER = "inference-header-content-length"
# the most dimensions a tensor may declare (no model here takes more than 4)
MAX_RANK = 8
# the largest product of a shape's non-zero dimensions: with a zero among them the data is
# empty whatever the others say, and NumPy refuses an array shape past its index range
MAX_ELEMENTS = 2 ** 62


class InferenceError(ValueError):
    """A request the server cannot answer, with the HTTP status to answer it with."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass
class Tensor:
    """One input tensor of a request: its v2 datatype and its data, already shaped."""

    name: str
    datatype: str
    data: np.ndarray


@dataclass
class InferRequest:
    """A parsed request: the inputs by name, the request's parameters, the outputs asked
    for (name -> whether in binary) or None for all."""

    id: str | None
    inputs: dict[str, Tensor]
    parameters: dict = field(default_factory=dict)
    outputs: dict[str, bool | None] | None = None
    binary_output: bool = False


def datatype_of(arr: np.ndarray) -> str:
    """The v2 datatype of a NumPy array (object arrays are BYTES)."""
    for name, dtype in DATATYPES.items():
        if arr.dtype == dtype or (name != "BYTES" and arr.dtype.newbyteorder("<") == dtype):
            return name
    raise TypeError(f"Expected an array of a v2 datatype; received dtype {arr.dtype}.")


# -- requests ------------------------------------------------------------------------------------
def _header_length(value: str | None, size: int) -> int | None:
    if value is None:
        return None
    try:
        n = int(value)
    except ValueError:
        raise InferenceError("Expected the Inference-Header-Content-Length header as a "
                             f"number of bytes; received {value[:40]!r}.") from None
    if not 0 < n <= size:
        raise InferenceError(f"Expected the Inference-Header-Content-Length header from 1 to "
                             f"the body's {size} bytes; received {n}.")
    return n


def _json_header(body: bytes) -> dict:
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InferenceError(f"Expected the request body as a JSON object; received malformed "
                             f"JSON ({e}).") from None
    except RecursionError:
        raise InferenceError("Expected the request body as a JSON object; received JSON "
                             "nested too deeply.") from None
    except ValueError:  # an integer longer than Python converts (sys.get_int_max_str_digits)
        raise InferenceError("Expected the request body as a JSON object with numbers of at "
                             f"most {sys.get_int_max_str_digits()} digits; received a longer "
                             "one.") from None
    if not isinstance(doc, dict):
        raise InferenceError("Expected the request body as a JSON object with `inputs`; "
                             f"received a JSON {type(doc).__name__}.")
    return doc


def _parameters(obj: dict, where: str) -> dict:
    params = obj.get("parameters", {})
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise InferenceError(f"Expected `parameters` of {where} as a JSON object; received "
                             f"{type(params).__name__}.")
    return params


def _shape(spec: dict, where: str) -> tuple[int, ...]:
    shape = spec.get("shape")
    if not isinstance(shape, list) or len(shape) > MAX_RANK or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise InferenceError(f"Expected `shape` of {where} as a list of at most {MAX_RANK} "
                             f"non-negative ints; received {str(shape)[:80]}.")
    if math.prod(d for d in shape if d) > MAX_ELEMENTS:
        raise InferenceError(f"Expected `shape` of {where} with at most 2**62 elements; "
                             f"received {str(shape)[:80]}.")
    return tuple(shape)


def parse_request(body: bytes, header_length: str | None = None) -> InferRequest:
    """The request in `body`; `header_length` is the Inference-Header-Content-Length header.

    Raises `InferenceError` (status 400) naming the field at fault."""
    try:
        return _parse(body, header_length)
    except ArithmeticError as e:  # a number no check above foresaw: still the client's
        raise InferenceError(f"The request holds a number out of range ({e}).") from None


def _parse(body: bytes, header_length: str | None) -> InferRequest:
    n_json = _header_length(header_length, len(body))
    doc = _json_header(body if n_json is None else body[:n_json])
    binary = memoryview(body)[n_json:] if n_json is not None else memoryview(b"")
    inputs = doc.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InferenceError("Expected `inputs` as a non-empty list of tensors; received "
                             f"{'none' if inputs is None else type(inputs).__name__}.")
    tensors, offset = {}, 0
    for i, spec in enumerate(inputs):
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise InferenceError(f"Expected inputs[{i}] as an object with a string `name`; "
                                 f"received {str(spec)[:80]}.")
        name = spec["name"]
        if name in tensors:
            raise InferenceError(f"Input {name!r} is given twice.")
        tensor, offset = _input_tensor(spec, binary, offset)
        tensors[name] = tensor
    if offset != len(binary):
        raise InferenceError(f"The binary part of the body holds {len(binary)} bytes, but the "
                             f"inputs' `binary_data_size` parameters add up to {offset}.")
    params = _parameters(doc, "the request")
    return InferRequest(id=_request_id(doc), inputs=tensors, parameters=params,
                        outputs=_requested_outputs(doc),
                        binary_output=params.get("binary_data_output") is True)


def _request_id(doc: dict) -> str | None:
    rid = doc.get("id")
    if rid is not None and not isinstance(rid, str):
        raise InferenceError(f"Expected `id` as a string; received {type(rid).__name__}.")
    return rid


def _requested_outputs(doc: dict) -> dict[str, bool | None] | None:
    outputs = doc.get("outputs")
    if outputs is None:
        return None
    if not isinstance(outputs, list):
        raise InferenceError(f"Expected `outputs` as a list; received {type(outputs).__name__}.")
    asked = {}
    for i, spec in enumerate(outputs):
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise InferenceError(f"Expected outputs[{i}] as an object with a string `name`; "
                                 f"received {str(spec)[:80]}.")
        flag = _parameters(spec, f"output {spec['name']!r}").get("binary_data")
        asked[spec["name"]] = flag if isinstance(flag, bool) else None
    return asked


def _input_tensor(spec: dict, binary: memoryview, offset: int) -> tuple[Tensor, int]:
    name = spec["name"]
    where = f"input {name!r}"
    datatype = spec.get("datatype")
    if datatype not in DATATYPES:
        raise InferenceError(f"Expected `datatype` of {where} as one of {sorted(DATATYPES)}; "
                             f"received {str(datatype)[:40]!r}.")
    shape = _shape(spec, where)
    size = _parameters(spec, where).get("binary_data_size")
    if size is not None:
        if isinstance(size, bool) or not isinstance(size, int) or not \
                0 <= size <= len(binary) - offset:
            raise InferenceError(f"Expected `binary_data_size` of {where} as the number of its "
                                 f"bytes, at most the {len(binary) - offset} left in the body; "
                                 f"received {size!r}.")
        if "data" in spec:
            raise InferenceError(f"{where.capitalize()} has both `data` and `binary_data_size`; "
                                 "expected one of them.")
        data = _binary_data(binary[offset:offset + size], datatype, shape, where)
        return Tensor(name, datatype, data), offset + size
    if "data" not in spec:
        raise InferenceError(f"Expected `data` (or a `binary_data_size` parameter) in {where}; "
                             "received neither.")
    return Tensor(name, datatype, _json_data(spec["data"], datatype, shape, where)), offset


def _binary_data(raw: memoryview, datatype: str, shape: tuple, where: str) -> np.ndarray:
    count = math.prod(shape)
    if datatype == "BYTES":
        return _bytes_elements(raw, count, where).reshape(shape)
    dtype = DATATYPES[datatype]
    if len(raw) != count * dtype.itemsize:
        raise InferenceError(f"Expected {count * dtype.itemsize} bytes for {where} ({datatype}, "
                             f"shape {list(shape)}); received binary_data_size {len(raw)}.")
    return np.frombuffer(raw, dtype=dtype).reshape(shape)


def _bytes_elements(raw: memoryview, count: int, where: str) -> np.ndarray:
    """The length-prefixed elements of a binary BYTES tensor, each length checked against
    what is left."""
    items, pos = [], 0
    while pos < len(raw):
        if len(raw) - pos < 4:
            raise InferenceError(f"Binary BYTES data of {where} ends inside an element's "
                                 "4-byte length.")
        (n,) = struct.unpack_from("<I", raw, pos)
        pos += 4
        if n > len(raw) - pos:
            raise InferenceError(f"Binary BYTES data of {where}: element {len(items)} declares "
                                 f"{n} bytes, but only {len(raw) - pos} are left.")
        items.append(bytes(raw[pos:pos + n]))
        pos += n
        if len(items) > count:
            break
    if len(items) != count:
        raise InferenceError(f"Expected {count} elements in the BYTES data of {where} (its "
                             f"shape); received {len(items)}{' or more' * (pos < len(raw))}.")
    out = np.empty(count, dtype=object)
    out[:] = items
    return out


def _json_data(data, datatype: str, shape: tuple, where: str) -> np.ndarray:
    count = math.prod(shape)
    if not isinstance(data, list):
        data = [data]
    if datatype == "BYTES":
        flat = _flatten(data, where)
        if not all(isinstance(v, str) for v in flat):
            bad = next(v for v in flat if not isinstance(v, str))
            raise InferenceError(f"Expected strings in the BYTES data of {where}; received "
                                 f"{type(bad).__name__} {str(bad)[:40]}.")
        arr = np.empty(len(flat), dtype=object)
        arr[:] = [v.encode() for v in flat]
    else:
        arr = _json_numbers(data, datatype, where)
    if arr.size != count:
        raise InferenceError(f"Expected {count} values in `data` of {where} (shape "
                             f"{list(shape)}); received {arr.size}.")
    return arr.reshape(shape)


def _flatten(data: list, where: str) -> list:
    out, stack = [], [iter(data)]
    while stack:
        for v in stack[-1]:
            if isinstance(v, list):
                if len(stack) > MAX_RANK:
                    raise InferenceError(f"`data` of {where} is nested deeper than {MAX_RANK}.")
                stack.append(iter(v))
                break
            out.append(v)
        else:
            stack.pop()
    return out


def _json_numbers(data: list, datatype: str, where: str) -> np.ndarray:
    """Numbers (row-major, flat or nested) as `datatype`; null is NaN for float types."""
    dtype = DATATYPES[datatype]
    try:
        raw = np.asarray(data)
    except ValueError:  # ragged nesting: the elements in row-major order
        raw = np.asarray(_flatten(data, where), dtype=object)
    kinds = "b" if datatype == "BOOL" else "iuf" if datatype.startswith("FP") else "iu"
    if raw.dtype.kind not in kinds:
        raw = _checked_numbers(raw.ravel().tolist(), datatype, where)
    if raw.dtype.kind in "iu" and dtype.kind in "iu" and raw.size:
        info = np.iinfo(dtype)
        if raw.min() < info.min or raw.max() > info.max:
            raise InferenceError(f"`data` of {where} holds values out of the range of "
                                 f"{datatype} [{info.min}, {info.max}].")
    try:
        with np.errstate(over="raise", invalid="ignore"):
            return raw.astype(dtype, copy=False).ravel()
    except (OverflowError, FloatingPointError):
        raise InferenceError(f"`data` of {where} holds values out of the range of "
                             f"{datatype}.") from None


def _checked_numbers(flat: list, datatype: str, where: str) -> np.ndarray:
    """The slow path: each element checked, with a message naming the first bad one."""
    floats = datatype.startswith("FP")
    for v in flat:
        if isinstance(v, list):
            raise InferenceError(f"`data` of {where} is nested deeper than {MAX_RANK}.")
        ok = (isinstance(v, bool) if datatype == "BOOL" else
              not isinstance(v, bool) and (isinstance(v, numbers.Real | None) if floats
                                           else isinstance(v, numbers.Integral)))
        if not ok:
            raise InferenceError(f"Expected {datatype} numbers in `data` of {where}; received "
                                 f"{type(v).__name__} {str(v)[:40]}.")
    if floats:
        try:
            return np.asarray([math.nan if v is None else float(v) for v in flat])
        except OverflowError:  # an integer of hundreds of digits: no float holds it
            raise InferenceError(f"`data` of {where} holds values out of the range of "
                                 f"{datatype}.") from None
    try:
        return np.asarray(flat, dtype=np.int64 if datatype != "UINT64" else np.uint64)
    except OverflowError:
        raise InferenceError(f"`data` of {where} holds values out of the range of "
                             f"{datatype}.") from None


# -- responses -----------------------------------------------------------------------------------
def _json_values(arr: np.ndarray) -> list:
    if arr.dtype == object:
        return [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
                for v in arr.ravel()]
    return arr.ravel().tolist()


def _raw_bytes(arr: np.ndarray) -> bytes:
    if arr.dtype == object:
        parts = []
        for v in arr.ravel():
            b = v if isinstance(v, bytes) else str(v).encode()
            parts += [struct.pack("<I", len(b)), b]
        return b"".join(parts)
    return np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).tobytes()


def encode_response(model_name: str, request: InferRequest, outputs: dict[str, np.ndarray],
                    *, version: str = "1") -> tuple[bytes, int | None]:
    """The response body, and the JSON header's length when binary outputs follow it
    (the Inference-Header-Content-Length header; None for a JSON-only body)."""
    tensors, blobs = [], []
    for name, arr in outputs.items():
        t = {"name": name, "datatype": datatype_of(arr), "shape": list(arr.shape)}
        asked = None if request.outputs is None else request.outputs.get(name)
        if asked or (asked is None and request.binary_output):
            blob = _raw_bytes(arr)
            t["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            t["data"] = _json_values(arr)
        tensors.append(t)
    doc = {"model_name": model_name, "model_version": version, "outputs": tensors}
    if request.id is not None:
        doc["id"] = request.id
    head = json.dumps(doc, allow_nan=True, separators=(",", ":")).encode()
    if not blobs:
        return head, None
    return b"".join([head, *blobs]), len(head)
