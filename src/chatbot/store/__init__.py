"""Where sessions are kept between processes: the interface and its SQLite default."""
