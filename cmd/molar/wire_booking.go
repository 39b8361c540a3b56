package main

import "github.com/molar-health/molar/modules"

// bookingModule builds the booking module (modules/booking); nil until it exists.
func bookingModule(s *server) modules.Module { return nil }

// bookingPart wires what the core needs from booking (worklist feed,
// appointments for the portal) through the core's interfaces.
func bookingPart(s *server) corePart { return corePart{name: "booking"} }
