-- v15: nothing for SQLite. The PostgreSQL migration of the same number adds
-- a server-side function that records a decision in one round trip to the
-- database; SQLite runs in the server's process, where a round trip costs
-- nothing, so its decisions stay as they are. The file keeps both
-- backends' migration lists equal.

