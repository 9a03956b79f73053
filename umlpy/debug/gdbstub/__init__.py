"""A GDB remote serial protocol stub: a real gdb attaches over TCP to a guest process."""
