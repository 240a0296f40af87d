"""Regenerate messages.json, the protobuf field table, from a kubectl binary.

Run ``python -m control.api.protobuf.generate [path/to/kubectl]`` (``make k8s-proto``).
Go programs built with Kubernetes' generated types carry two facts of the wire
format we need: the gzipped FileDescriptorProto of every ``generated.proto`` (field
names, numbers, types) and, in the Go type data, whether a struct field is a pointer
(a pointer's zero value is sent and means something, ``replicas: 0``; a plain
field's zero value is always sent and means "unset", as JSON's omitempty), inlined
in JSON, or ``omitempty``. Both are read here and reduced to a compact table;
nothing else is taken from the binary. A table rather than compiled .proto
stubs: the codec must turn messages into the JSON objects the API already
handles (inlined structs, base64 bytes, RFC 3339 times, int-or-string, Go's zero
rules), which generated classes would only add a conversion layer to.

The Go type data is read with the layout of Go 1.21+ (abi.Type: kind at byte 23,
name offset at 40, from the start of .rodata; a struct type's field slice at 56;
a field is name, type, offset); a binary that does not match yields no shapes,
and every field then keeps its zero values (the safe side).
"""

import json
import pathlib
import re
import struct
import sys
import zlib

from google.protobuf import descriptor_pb2

OUT = pathlib.Path(__file__).with_name("messages.json")
DEFAULT_KUBECTL = "/usr/bin/kubectl"
#: The packages of the served groups (plus what their messages refer to).
PACKAGES = ("core.v1", "apps.v1", "batch.v1", "rbac.v1", "coordination.v1", "discovery.v1",
            "networking.v1", "authorization.v1", "authentication.v1", "certificates.v1",
            "autoscaling.v1", "autoscaling.v2", "policy.v1", "storage.v1")
META = "k8s.io.apimachinery.pkg.apis.meta.v1."
EXTRA_ROOTS = (META + "Status", META + "WatchEvent", META + "DeleteOptions", META + "List",
               "k8s.io.apimachinery.pkg.runtime.Unknown")
SCALARS = {1: "double", 2: "float", 3: "int64", 4: "uint64", 5: "int32", 8: "bool",
           9: "string", 12: "bytes", 13: "uint32", 17: "int32", 18: "int64"}
GO_KIND_PTR = 22
GO_KIND_STRUCT = 25
GZIP_HEAD = b"\x1f\x8b\x08\x00\x00\x00\x00\x00"


def descriptors(binary):
    """Every k8s.io FileDescriptorProto embedded (gzipped) in a Go binary."""
    found, pos = {}, 0
    while (pos := binary.find(GZIP_HEAD, pos) + 1) > 0:
        try:
            raw = zlib.decompressobj(31).decompress(binary[pos - 1:pos + 2_000_000])
            fd = descriptor_pb2.FileDescriptorProto.FromString(raw)
        except Exception:      # noqa: BLE001 - most matches of the gzip magic are not one
            continue
        if fd.package.startswith("k8s.io."):
            found[fd.name] = fd
    return found


class GoTypes:
    """The flags of protobuf-tagged struct fields, from a static Go binary's type data."""

    def __init__(self, binary):
        self.data = binary
        self.sections = _elf_sections(binary)
        ro = self.sections[".rodata"]
        self.ro_addr, self.ro_off, self.ro_size = ro
        self.types_base = self.ro_addr

    def _off(self, addr):
        return addr - self.ro_addr + self.ro_off

    def _in_ro(self, addr):
        return self.ro_addr <= addr < self.ro_addr + self.ro_size

    def _varint(self, off):
        value = shift = 0
        while True:
            byte = self.data[off]
            off += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return value, off

    def _name(self, off):
        flags = self.data[off]
        length, off = self._varint(off + 1)
        name, off = self.data[off:off + length], off + length
        tag = b""
        if flags & 2:
            tag_len, off = self._varint(off)
            tag = self.data[off:off + tag_len]
        return name.decode("latin-1"), tag.decode("latin-1")

    def structs(self):
        """Yield (type name without package, {(proto name, number): flags}): "p" a pointer,
        "i" inlined in JSON, "e" no omitempty (JSON writes its zero)."""
        data, start = self.data, self.ro_off
        for t in range(start, start + self.ro_size - 80, 8):
            if data[t + 23] & 0x1F != GO_KIND_STRUCT:
                continue
            fields_ptr, length, cap = struct.unpack_from("<QQQ", data, t + 56)
            if not (self._in_ro(fields_ptr) and 0 < length < 400 and length == cap):
                continue
            try:
                fields = self._fields(fields_ptr, length)
                type_name = self._name(self.types_base - self.ro_addr + self.ro_off
                                       + struct.unpack_from("<i", data, t + 40)[0])[0]
            except (ValueError, IndexError, UnicodeDecodeError):
                continue
            if fields:
                yield type_name.lstrip("*").rpartition(".")[2], fields

    def _fields(self, fields_ptr, length):
        out = {}
        for i in range(length):
            name_ptr, type_ptr, _ = struct.unpack_from("<QQQ", self.data,
                                                       self._off(fields_ptr) + 24 * i)
            if not (self._in_ro(name_ptr) and self._in_ro(type_ptr)):
                raise ValueError("not a struct type")
            _, tag = self._name(self._off(name_ptr))
            found = re.search(r'protobuf:"\w+,(\d+),(?:opt|rep),name=(\w+)', tag)
            if found:
                kind = self.data[self._off(type_ptr) + 23] & 0x1F
                json_tag = re.search(r'json:"([^"]*)"', tag)
                omitempty = json_tag is not None and "omitempty" in json_tag.group(1)
                flags = ("p" if kind == GO_KIND_PTR else "") + (
                    "i" if 'json:",inline"' in tag else "") + ("" if omitempty else "e")
                out[(found.group(2), int(found.group(1)))] = flags
        return out


def _elf_sections(binary):
    shoff, = struct.unpack_from("<Q", binary, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", binary, 0x3A)
    headers = [struct.unpack_from("<IIQQQQ", binary, shoff + i * shentsize)
               for i in range(shnum)]
    names_off = headers[shstrndx][4]
    out = {}
    for name_idx, _, _, addr, off, size in headers:
        end = binary.index(b"\0", names_off + name_idx)
        out[binary[names_off + name_idx:end].decode()] = (addr, off, size)
    return out


def _field_type(field, messages):
    if field.type in (11, 14):     # a message (or an enum, which k8s never uses)
        name = field.type_name.lstrip(".")
        entry = messages.get(name)
        if entry is not None and entry.options.map_entry:
            key, value = entry.field
            return ["map", _field_type(key, messages), _field_type(value, messages)]
        return name
    return SCALARS[field.type]


def _go_flags(field, ftype, shapes):
    """"p" when a zero value means something (a pointer), "i" when JSON inlines the field,
    "e" when JSON writes the field's zero value (no omitempty)."""
    if shapes:
        flags = "".join(sorted({c for s in shapes for c in s[(field.name, field.number)]}))
        return flags
    # The Go type was left out of the binary: keep its zeros; an embedded struct is
    # named after its type (volumeSource VolumeSource, ephemeralContainerCommon ...).
    inline = isinstance(ftype, str) and ftype.rpartition(".")[2] == (
        field.name[:1].upper() + field.name[1:])
    return "p" + ("i" if inline else "")


def build(binary):
    """Return the table: {full message name: [[json name, number, type, flags], ...]}."""
    files = descriptors(binary)
    messages = {}

    def collect(prefix, message):
        full = f"{prefix}.{message.name}"
        messages[full] = message
        for nested in message.nested_type:
            collect(full, nested)

    for fd in files.values():
        for message in fd.message_type:
            collect(fd.package, message)
    pointers = {}
    for type_name, fields in GoTypes(binary).structs():
        pointers.setdefault((type_name, frozenset(fields)), []).append(fields)
    roots = [name for name in messages
             if any(name.startswith(f"k8s.io.api.{p}.") for p in PACKAGES)
             and not messages[name].options.map_entry] + list(EXTRA_ROOTS)
    table, todo = {}, list(roots)
    while todo:
        name = todo.pop()
        if name in table or name not in messages:
            continue
        message = messages[name]
        shapes = pointers.get((message.name, frozenset((f.name, f.number)
                                                       for f in message.field)), [])
        rows = []
        for field in message.field:
            ftype = _field_type(field, messages)
            flags = "r" if field.label == 3 else ""
            flags += _go_flags(field, ftype, shapes)
            rows.append([field.name, field.number, ftype, flags])
            for part in (ftype if isinstance(ftype, list) else [ftype]):
                if isinstance(part, str) and "." in part:
                    todo.append(part)
        table[name] = rows
    return table


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    binary = pathlib.Path(argv[0] if argv else DEFAULT_KUBECTL).resolve().read_bytes()
    table = build(binary)
    # One message a line: a regenerated table diffs by message.
    lines = [f"{json.dumps(name)}:{json.dumps(rows, separators=(',', ':'))}"
             for name, rows in sorted(table.items())]
    OUT.write_text("{\n" + ",\n".join(lines) + "\n}\n")
    print(f"{OUT}: {len(table)} messages")


if __name__ == "__main__":
    main()
