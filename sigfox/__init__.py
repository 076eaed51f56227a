"""The Sigfox uplink contract (DESIGN section 1): topics, the JSON body, sequence numbers."""
