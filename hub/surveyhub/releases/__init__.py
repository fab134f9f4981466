"""The release store: versioned survey releases on shared storage, and the readers and writers of their files."""
