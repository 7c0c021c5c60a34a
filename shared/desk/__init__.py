"""The desk: the web application category managers, store managers and analysts work in."""
