"""Boot-time parsing: the UML command line, console/serial channels and coLinux-style
configuration files. Pure functions over strings (only read_config_file and
load_boot_config touch the file system); the boot sequence consumes BootConfig.

    config, notes = load_boot_config(sys.argv[1:])   # or parse_boot_args(argv)
    # BootOptionError: print(f"umlpy: {err}"), exit 2
"""
from .channels import (MAX_CONSOLES, MAX_SERIAL_LINES, Channel, ChannelConfig, ChannelKind,
                       LineChannels, LineOption, parse_channel, parse_line_option,
                       parse_line_spec, resolve_channels)
from .config_file import (load_boot_config, parse_config_text, read_config_file,
                          split_config_switch)
from .errors import BootOptionError
from .options import (DEFAULT_MEM, HELP, MIN_MEM, BootConfig, check_option, merge_options,
                      option_key, parse_boot_args, parse_size, split_init_args,
                      ubd_index_of_root)

__all__ = [
    "BootConfig", "BootOptionError", "Channel", "ChannelConfig", "ChannelKind", "DEFAULT_MEM",
    "HELP", "LineChannels", "LineOption", "MAX_CONSOLES", "MAX_SERIAL_LINES", "MIN_MEM",
    "check_option", "load_boot_config", "merge_options", "option_key", "parse_boot_args",
    "parse_channel", "parse_config_text", "parse_line_option", "parse_line_spec",
    "parse_size", "read_config_file", "resolve_channels", "split_config_switch",
    "split_init_args", "ubd_index_of_root",
]
