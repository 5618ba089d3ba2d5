"""An empty program: what a launcher adds to it is its startup cost."""
