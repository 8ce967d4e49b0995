"""Input/output: DL3 data stores, FITS and zarr maps."""
