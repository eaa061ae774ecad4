-- v17: nothing for SQLite. The PostgreSQL migration of the same number
-- adds a function that creates a request in one statement (the identity's
-- lock, the facts and the guarded insert); SQLite's single writer already
-- creates a request in one transaction of its own. The file keeps both
-- backends' migration lists equal.
SELECT 1;
