-- The schema River's own migrations fill (see jobs.Migrate). Creating it
-- through the Molar runner gives the runtime role its default privileges.
SELECT 1;
