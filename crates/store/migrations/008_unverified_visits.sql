-- A visit a device receives whole from the server may be stored before it
-- is loaded: its summary row is then the server's listing (verified = 0)
-- until the device first opens the document, which loads and checks it and
-- works the summary out itself (verified = 1). Every visit stored before
-- this migration was loaded when stored.
ALTER TABLE visits ADD COLUMN verified INTEGER NOT NULL DEFAULT 1 CHECK (verified IN (0, 1));
