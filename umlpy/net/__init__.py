"""Networking: the guest's unix-socket names, its network policy (own loopback
or the host's stack), port forwarding and what tools read about interfaces."""
