"""Device drivers: the device table, consoles, block devices."""
