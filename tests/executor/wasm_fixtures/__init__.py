"""Small WASI preview1 programs, written in WAT, that the WASM executor tests run.

Each is built from one prelude (every WASI import the programs use, one page of memory and two
helpers: ``$write fd ptr len`` and ``$num fd n`` for a decimal number) plus a ``_start``. Text
constants live from offset 1024 on; offsets below that are scratch space for the helpers and
the WASI calls (iovecs at 0, result slots at 16..63, digits at 64..95, poll structures at
256..383, argv/environ pointers at 2048 and 3072, their strings at 4096 and 8192).
WAT keeps the fixtures reviewable in the diff; wasmtime compiles WAT directly.
"""

from __future__ import annotations

_PRELUDE = """
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read"
    (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_close" (func $fd_close (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_prestat_dir_name"
    (func $fd_prestat_dir_name (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_symlink"
    (func $path_symlink (param i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_sizes_get"
    (func $args_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get" (func $args_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get"
    (func $environ_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_get"
    (func $environ_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff"
    (func $poll_oneoff (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)

  ;; write len bytes at ptr to fd (one iovec at 0, bytes written at 16)
  (func $write (param $fd i32) (param $ptr i32) (param $len i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $fd_write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 16))))

  ;; write n (unsigned) in decimal to fd, digits built backwards from 96
  (func $num (param $fd i32) (param $n i32)
    (local $p i32)
    (local.set $p (i32.const 96))
    (loop $digits
      (local.set $p (i32.sub (local.get $p) (i32.const 1)))
      (i32.store8 (local.get $p)
        (i32.add (i32.const 48) (i32.rem_u (local.get $n) (i32.const 10))))
      (local.set $n (i32.div_u (local.get $n) (i32.const 10)))
      (br_if $digits (local.get $n)))
    (call $write (local.get $fd) (local.get $p) (i32.sub (i32.const 96) (local.get $p))))

  ;; sleep ms milliseconds (poll_oneoff on one monotonic clock subscription)
  (func $sleep (param $ms i32)
    (i64.store (i32.const 256) (i64.const 0))
    (i32.store8 (i32.const 264) (i32.const 0))
    (i32.store (i32.const 272) (i32.const 1))
    (i64.store (i32.const 280)
      (i64.mul (i64.extend_i32_u (local.get $ms)) (i64.const 1000000)))
    (i64.store (i32.const 288) (i64.const 0))
    (i32.store16 (i32.const 296) (i32.const 0))
    (drop (call $poll_oneoff (i32.const 256) (i32.const 320) (i32.const 1) (i32.const 360))))
"""


def _module(data: str, start: str) -> str:
    return f'{_PRELUDE}\n{data}\n  (func (export "_start")\n{start}\n  )\n)\n'


def hello(exit_code: int | None = None) -> str:
    """``hello`` on stdout and ``warn`` on stderr; then ``proc_exit(exit_code)``, or return."""
    exit_call = "" if exit_code is None else f"(call $proc_exit (i32.const {exit_code}))"
    return _module(
        '(data (i32.const 1024) "hello\\n") (data (i32.const 1040) "warn\\n")',
        f"(call $write (i32.const 1) (i32.const 1024) (i32.const 6))\n"
        f"(call $write (i32.const 2) (i32.const 1040) (i32.const 5))\n{exit_call}",
    )


#: Spins forever without calling the host: only fuel, a timeout or a cancel can stop it.
LOOP = _module("", "(loop $forever (br $forever))")

#: Divides by zero: a trap.
TRAP = _module("", "(drop (i32.div_u (i32.const 1) (i32.const 0)))")

#: Grows its memory 1 MiB at a time until ``memory.grow`` is refused, says so on stderr and
#: aborts (``unreachable``), as Rust's allocation-failure handler does.
GROW = _module(
    '(data (i32.const 1024) "memory.grow refused\\n")',
    """(loop $more
      (br_if $more (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))
    (call $write (i32.const 2) (i32.const 1024) (i32.const 20))
    unreachable""",
)

#: Declares 100 pages (6.25 MiB) of memory up front: cannot even start under a smaller cap.
BIG_MEMORY = '(module (memory 100) (func (export "_start")))'

#: Not a command: no ``_start``.
NO_START = '(module (func (export "main")))'

#: Imports a function the executor does not provide.
FOREIGN_IMPORT = '(module (import "env" "host_fn" (func)) (func (export "_start")))'


def ticker(count: int, delay_ms: int) -> str:
    """``tick <i>`` on stdout ``count`` times, ``delay_ms`` apart; then ``done`` on stderr."""
    return _module(
        '(data (i32.const 1024) "tick ") (data (i32.const 1032) "\\n") '
        '(data (i32.const 1040) "done\\n")',
        f"""(local $i i32)
    (loop $tick
      (call $write (i32.const 1) (i32.const 1024) (i32.const 5))
      (call $num (i32.const 1) (local.get $i))
      (call $write (i32.const 1) (i32.const 1032) (i32.const 1))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (if (i32.lt_u (local.get $i) (i32.const {count}))
        (then (call $sleep (i32.const {delay_ms})) (br $tick))))
    (call $write (i32.const 2) (i32.const 1040) (i32.const 5))""",
    )


def spew(chunks: int) -> str:
    """``chunks`` blocks of 4096 ``x`` on stdout (more than a result keeps, when large)."""
    return _module(
        "",
        f"""(local $i i32)
    (memory.fill (i32.const 16384) (i32.const 120) (i32.const 4096))
    (loop $more
      (call $write (i32.const 1) (i32.const 16384) (i32.const 4096))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $more (i32.lt_u (local.get $i) (i32.const {chunks}))))""",
    )


#: argv's NUL-terminated strings on stdout, environ's ("K=V\\0"...) on stderr.
ARGS_ENV = _module(
    "",
    """(drop (call $args_sizes_get (i32.const 32) (i32.const 36)))
    (drop (call $args_get (i32.const 2048) (i32.const 4096)))
    (call $write (i32.const 1) (i32.const 4096) (i32.load (i32.const 36)))
    (drop (call $environ_sizes_get (i32.const 32) (i32.const 36)))
    (drop (call $environ_get (i32.const 3072) (i32.const 8192)))
    (call $write (i32.const 2) (i32.const 8192) (i32.load (i32.const 36)))""",
)

# Paths and labels of SANDBOX, with their lengths.
_SANDBOX_DATA = {
    1024: "../../etc/passwd",
    1056: "/etc/passwd",
    1072: "note.txt",
    1088: "written in the sandbox",
    1120: "link",
    1136: "../../../../../../../../etc/passwd",
    1184: "escape ",
    1200: "absolute ",
    1216: "symlink ",
    1232: "open-link ",
    1248: "write ",
    1264: "read ",
    1280: "preopen ",
    1296: "\\n",
    1304: " ",
}


def _text(offset: int) -> str:
    text = _SANDBOX_DATA[offset]
    return f"(i32.const {offset}) (i32.const {len(text.replace(chr(92) + 'n', chr(10)))})"


def _report(label: int, errno: str) -> str:
    """``<label><errno>\\n`` on stdout."""
    return (
        f"(call $write (i32.const 1) {_text(label)})\n"
        f"    (call $num (i32.const 1) {errno})\n"
        f"    (call $write (i32.const 1) {_text(1296)})"
    )


_RIGHTS = "(i64.const 66) (i64.const 66)"  # FD_READ | FD_WRITE

#: Tries to escape its preopen (fd 3) with ``..``, an absolute path and a symlink, printing
#: ``<what> <errno>`` for each (0 = it worked); then writes and reads back ``note.txt`` inside
#: the sandbox, printing ``read <errno> <content>``, and the preopen's guest name.
SANDBOX = _module(
    " ".join(f'(data (i32.const {o}) "{t}")' for o, t in _SANDBOX_DATA.items()),
    f"""(local $fd i32)
    ;; the preopen's name
    (drop (call $fd_prestat_dir_name (i32.const 3) (i32.const 1536) (i32.const 64)))
    (call $write (i32.const 1) {_text(1280)})
    (call $write (i32.const 1) (i32.const 1536) (i32.const 8))
    (call $write (i32.const 1) {_text(1296)})
    ;; ../../etc/passwd relative to the preopen
    {
        _report(
            1184,
            f"(call $path_open (i32.const 3) (i32.const 0) {_text(1024)} (i32.const 0) "
            f"{_RIGHTS} (i32.const 0) (i32.const 48))",
        )
    }
    ;; an absolute path
    {
        _report(
            1200,
            f"(call $path_open (i32.const 3) (i32.const 0) {_text(1056)} (i32.const 0) "
            f"{_RIGHTS} (i32.const 0) (i32.const 48))",
        )
    }
    ;; a symlink pointing out of the sandbox, then opening it (following symlinks)
    {_report(1216, f"(call $path_symlink {_text(1136)} (i32.const 3) {_text(1120)})")}
    {
        _report(
            1232,
            f"(call $path_open (i32.const 3) (i32.const 1) {_text(1120)} (i32.const 0) "
            f"{_RIGHTS} (i32.const 0) (i32.const 48))",
        )
    }
    ;; create note.txt and write to it
    {
        _report(
            1248,
            f"(call $path_open (i32.const 3) (i32.const 0) {_text(1072)} (i32.const 9) "
            f"{_RIGHTS} (i32.const 0) (i32.const 48))",
        )
    }
    (local.set $fd (i32.load (i32.const 48)))
    (i32.store (i32.const 0) (i32.const 1088))
    (i32.store (i32.const 4) (i32.const 22))
    (drop (call $fd_write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 16)))
    (drop (call $fd_close (local.get $fd)))
    ;; read it back
    (call $write (i32.const 1) {_text(1264)})
    (call $num (i32.const 1) (call $path_open (i32.const 3) (i32.const 0) {_text(1072)}
      (i32.const 0) {_RIGHTS} (i32.const 0) (i32.const 48)))
    (call $write (i32.const 1) {_text(1304)})
    (local.set $fd (i32.load (i32.const 48)))
    (i32.store (i32.const 0) (i32.const 1600))
    (i32.store (i32.const 4) (i32.const 64))
    (drop (call $fd_read (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 20)))
    (call $write (i32.const 1) (i32.const 1600) (i32.load (i32.const 20)))
    (call $write (i32.const 1) {_text(1296)})""",
)
