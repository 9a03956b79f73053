"""Debugging and profiling the guest and the kernel: the syscall trace
(`--trace`, `--stats`), kernel profiling (`--profile`, `--coverage`) and the
GDB remote stub (`--gdb`). Nothing here runs unless one of those is asked for."""
