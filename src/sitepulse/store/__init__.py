"""Storage: the protocol every backend meets, the single writer, and the backends."""
