"""Attribution and valuation methods, one module each, registered by name."""
