"""hactl lab: real controllers in network namespaces."""
