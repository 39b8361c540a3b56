-- The recipients an outbox row already reached. A notification goes to
-- several people (both custody holders, the young person from 15); when one
-- of them cannot be reached the row is tried again, for that one only.
-- Recipients are kept as short hashes of their addresses, not the addresses.
ALTER TABLE booking.outbox ADD COLUMN delivered text[] NOT NULL DEFAULT '{}';
