"""EK-FAC influence functions through kronfluence (``method=ekfac``)."""
