#!/usr/bin/env bash
# Builds the seven Lambda zips (cargo lambda build --release --output-format zip)
# and checks each one: it exists, holds an executable ELF `bootstrap` for the
# target architecture, and needs no newer glibc than provided.al2023 has.
# Prints each zip's size and the (stripped) binary's size; warns over 4 MB.
#
#   scripts/build-zips.sh                 # x86_64, the only target buildable here
#   ARCH=arm64 scripts/build-zips.sh      # on a machine with aarch64-unknown-linux-gnu
#   COMPILER=cargo scripts/build-zips.sh  # plain cargo instead of cargo-zigbuild
#
# Release artifacts go to $CARGO_TARGET_DIR (default target-release/), away
# from the debug target/ other work uses; zips end up in
# $CARGO_TARGET_DIR/lambda/<function>/bootstrap.zip.
set -euo pipefail

source "$(dirname "$0")/lib.sh"
cd "$ROOT"

VENV="$INFRA_VENV"
mapfile -t FUNCTIONS < <(lambda_functions)
ARCH="${ARCH:-x86_64}"
COMPILER="${COMPILER:-}"          # empty: cargo-lambda's default (zig, from the ziglang wheel)
LIMIT_BYTES=$((4 * 1024 * 1024))
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target-release}"

# Nothing here talks to AWS, but cargo-lambda loads the SDK configuration for
# `deploy --dry`: never let it look for the instance metadata service.
# `deploy --dry`: lib.sh set dummy credentials and a region, and turned the
# instance metadata service off.


case "$ARCH" in
  x86_64) arch_flag=() ;;
  arm64) arch_flag=(--arm64) ;;
  *) echo "ARCH must be x86_64 or arm64, not $ARCH" >&2; exit 2 ;;
esac

step "cargo-lambda $CARGO_LAMBDA_VERSION in $VENV"
ensure_cargo_lambda
cargo lambda --version

compiler_flag=()
if [ -n "$COMPILER" ]; then compiler_flag=(--compiler "$COMPILER"); fi
packages=()
for fn in "${FUNCTIONS[@]}"; do packages+=(-p "$fn"); done

step "cargo lambda build --release --output-format zip ${arch_flag[*]} ${compiler_flag[*]} ${packages[*]}"
echo "CARGO_TARGET_DIR=$CARGO_TARGET_DIR"
start=$(date +%s)
cargo lambda build --release --output-format zip "${arch_flag[@]}" "${compiler_flag[@]}" "${packages[@]}"
echo "build took $(( $(date +%s) - start )) s"

step "checking the zips"
"$VENV/bin/python" - "$CARGO_TARGET_DIR/lambda" "$ARCH" "$LIMIT_BYTES" "${FUNCTIONS[@]}" <<'PY'
import struct
import sys
import zipfile
from pathlib import Path

lambda_dir, arch, limit = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
functions = sys.argv[4:]
MACHINE = {"x86_64": (0x3E, "x86-64"), "arm64": (0xB7, "AArch64")}
AL2023_GLIBC = (2, 34)


def elf_facts(data: bytes) -> dict:
    """Reads what matters from a 64-bit little-endian ELF image."""
    if data[:4] != b"\x7fELF":
        raise ValueError("not an ELF file")
    if data[4] != 2 or data[5] != 1:
        raise ValueError("not a 64-bit little-endian ELF")
    e_type, e_machine = struct.unpack_from("<HH", data, 16)
    e_shoff = struct.unpack_from("<Q", data, 0x28)[0]
    e_shentsize, e_shnum, e_shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    sections = []
    for i in range(e_shnum):
        off = e_shoff + i * e_shentsize
        name, kind, _flags, _addr, offset, size, link = struct.unpack_from("<IIQQQQI", data, off)
        sections.append({"name": name, "type": kind, "offset": offset, "size": size, "link": link})
    shstr = sections[e_shstrndx]

    def cstr(table, at):
        start = table["offset"] + at
        return data[start:data.index(b"\0", start)].decode()

    for s in sections:
        s["name"] = cstr(shstr, s["name"])
    names = {s["name"] for s in sections}
    glibc = []
    verneed = next((s for s in sections if s["type"] == 0x6FFFFFFE), None)  # SHT_GNU_verneed
    if verneed:
        strtab = sections[verneed["link"]]
        off = verneed["offset"]
        while True:
            _ver, cnt, _file, aux, nxt = struct.unpack_from("<HHIII", data, off)
            a = off + aux
            for _ in range(cnt):
                _hash, _flags, _other, name, anext = struct.unpack_from("<IHHII", data, a)
                version = cstr(strtab, name)
                if version.startswith("GLIBC_2."):
                    glibc.append(tuple(int(p) for p in version[6:].split(".")))
                if not anext:
                    break
                a += anext
            if not nxt:
                break
            off += nxt
    return {
        "type": {2: "EXEC", 3: "DYN"}.get(e_type, str(e_type)),
        "machine": e_machine,
        "stripped": ".symtab" not in names,
        "debug": any(n.startswith(".debug") for n in names),
        "glibc": max(glibc) if glibc else None,
    }


failures = 0
rows = []
for fn in functions:
    path = lambda_dir / fn / "bootstrap.zip"
    problems = []
    if not path.is_file():
        print(f"FAIL {fn}: {path} does not exist")
        failures += 1
        continue
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        if "bootstrap" not in names:
            print(f"FAIL {fn}: {path} has no bootstrap entry ({names})")
            failures += 1
            continue
        info = zf.getinfo("bootstrap")
        data = zf.read("bootstrap")
    try:
        facts = elf_facts(data)
    except (ValueError, struct.error) as e:
        print(f"FAIL {fn}: bootstrap is not a usable ELF: {e}")
        failures += 1
        continue
    want_machine, machine_name = MACHINE[arch]
    if facts["machine"] != want_machine:
        problems.append(f"ELF machine {facts['machine']:#x}, expected {machine_name}")
    if facts["type"] not in ("EXEC", "DYN"):
        problems.append(f"ELF type {facts['type']} is not an executable")
    mode = info.external_attr >> 16
    if not mode & 0o111:
        problems.append(f"bootstrap is not executable in the zip (mode {mode:o})")
    if facts["glibc"] and facts["glibc"] > AL2023_GLIBC:
        problems.append(
            "needs GLIBC_%d.%d, newer than provided.al2023's 2.34" % facts["glibc"]
        )
    if names != ["bootstrap"]:
        problems.append(f"unexpected extra entries {names}")
    zip_size = path.stat().st_size
    note = "" if zip_size < limit else "  OVER 4 MB"
    glibc = "GLIBC_%d.%d" % facts["glibc"] if facts["glibc"] else "static"
    rows.append(
        f"{fn:<12} zip {zip_size:>10,} B ({zip_size / 2**20:5.2f} MiB)   bootstrap {info.file_size:>11,} B "
        f"({info.file_size / 2**20:5.2f} MiB, {'stripped' if facts['stripped'] else 'NOT stripped'}, "
        f"{MACHINE[arch][1]}, needs {glibc}){note}"
    )
    for p in problems:
        print(f"FAIL {fn}: {p}")
    failures += bool(problems)

print()
for row in rows:
    print(row)
over = [r for r in rows if r.endswith("OVER 4 MB")]
print(f"\n{len(functions) - failures} of {len(functions)} zips valid; {len(over)} over 4 MB")
sys.exit(1 if failures else 0)
PY

step "cargo lambda deploy --dry reads the deploy settings (workspace Cargo.toml, then each function's)"
# Dry run: packages the zip and prints the configuration it would deploy,
# without calling AWS. (Its output names the binary; a real deploy goes to the
# positional function name, here example-stack-<fn>.)
show_config='
import json, sys
fn, raw = sys.argv[1], sys.argv[2]
out = json.loads(raw[raw.index("{"):])  # after the progress line cargo-lambda prints
c = out.get("config", {})
env = sorted(c.get("env_var") or [])
print(f"{fn:<12} memory={c.get('"'"'memory'"'"')} timeout={c.get('"'"'timeout'"'"')} tracing={c.get('"'"'tracing'"'"')} env={env}")
'
for fn in "${FUNCTIONS[@]}"; do
  if ! out="$(cargo lambda deploy --dry --output-format json --binary-name "$fn" "example-stack-$fn" 2>/dev/null)"; then
    echo "FAIL $fn: cargo lambda deploy --dry failed:"
    cargo lambda deploy --dry --binary-name "$fn" "example-stack-$fn" || true
    exit 1
  fi
  "$VENV/bin/python" -c "$show_config" "$fn" "$out"
done
