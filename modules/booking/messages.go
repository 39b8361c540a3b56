package booking

// Messages implements modules.Messager.
func (m *Module) Messages() map[string]map[string]string { return nil }
