"""What every benchmark shares: the load client, the server launcher, scratch databases and the report writer."""
