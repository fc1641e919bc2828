;; A WASI program for the wasm executor: prints a line to stdout and exits with code 0.
;; wasmtime compiles this text form directly; no toolchain is needed to build it.
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  ;; iovec at 0: {ptr=16, len=38}; the text at 16
  (data (i32.const 0) "\10\00\00\00\26\00\00\00")
  (data (i32.const 16) "hello from a WASM allocation on nunet\0a")
  (func (export "_start")
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
    (call $proc_exit (i32.const 0))))
