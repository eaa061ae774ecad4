-- v16: nothing for PostgreSQL. The SQLite migration of the same number
-- rewrites the requests' and decisions' `CHECK (x IN (...))` constraints as
-- `x = ... OR ...`, because SQLite builds a temporary table for such a list
-- at every insert or update that checks it; PostgreSQL tests the same
-- constraints without one, so its tables stay as they are. The file keeps
-- both backends' migration lists equal.
SELECT 1;
