"""What the three services share: server runtime, config, zeroconf, audio, metrics."""

__version__ = "0.1.0"
