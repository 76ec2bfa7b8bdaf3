"""The demo: a sample lead-generation site and the traffic that visits it."""
