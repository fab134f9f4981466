"""The release store: versioned survey releases on shared storage, and readers and writers of their files."""
