package postgres

// DropOwnerForTest gives up the owner lock and leaves the server running,
// as a killed molar whose postmaster has not yet noticed leaves it.
func (c *Cluster) DropOwnerForTest() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.releaseOwner()
}
