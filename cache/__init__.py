"""The local store: content-addressed blobs, the LMDB action cache, the stat cache, gc."""
