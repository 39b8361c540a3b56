package main

// viewerPart wires the dentist's web viewer (viewer/).
func viewerPart(s *server) corePart { return corePart{name: "viewer"} }
