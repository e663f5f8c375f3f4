"""Face and landmark detectors behind one Detection type."""
