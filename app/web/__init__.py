"""The chat page at `/`: a browser client of the JSON API, served from this package (no build step, no CDN)."""
