"""TrackStar through bergson (``method=trackstar``)."""
