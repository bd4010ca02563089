"""The pure clinical core: no I/O, no clock (it is passed in), no adapters, no worker."""
