package main

// journalPart wires the dental journal and the parent portal (journal/).
func journalPart(s *server) corePart {
	return corePart{name: "journal"}
}
