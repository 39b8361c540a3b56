// Package dimse implements the DICOM network protocol: the upper layer of
// PS3.8 (PDUs, association negotiation, the association state machine) and
// the DIMSE-C services of PS3.7 (C-ECHO, C-STORE, C-FIND, C-MOVE, C-GET,
// C-CANCEL), as an SCP (Server) and an SCU (Dial / Association).
//
// # Server (SCP)
//
//	srv := &dimse.Server{
//		AETitle: "MOLAR",
//		Policy: func(ctx context.Context, r *dimse.AssociationRequest) dimse.Decision {
//			ae, ok := lookupAE(ctx, r.CallingAE) // e.g. the known-AE table
//			if !ok {
//				return dimse.RejectCallingAE() // or Accept(ServiceEcho|ServiceStore) for unknown AEs
//			}
//			return dimse.Decision{Services: ae.services, Value: ae}
//		},
//		Store: ingest,            // dimse.StoreHandler: data streams as PDVs arrive
//		Find:  matcher,           // dimse.FindHandler: emit() sends pending responses
//		Move:  retriever,         // dimse.MoveHandler: Retrieve + Destination
//		Get:   retriever,         // dimse.RetrieveHandler
//		Logger: slog.Default(),
//		Hooks:  dimse.Hooks{DIMSE: observe}, // metrics
//	}
//	go srv.Serve(ln)          // ln may be a tls.Listener for DICOM TLS
//	...
//	srv.Shutdown(ctx)         // stop accepting, drain, then abort leftovers
//
// Presentation contexts are accepted for Verification always, for storage
// when Store is set (StorageSOPClasses × StorageTransferSyntaxes, by default
// every storage class of uid.StorageSOPClasses and the syntaxes of
// uid.DefaultTransferSyntaxes: stored as received, no transcoding), and for
// the query/retrieve models whose handler is set. The first proposed transfer
// syntax we support wins. Role selection is accepted as proposed for storage
// classes (C-GET). The Policy's Decision.Services further limits what an
// association may use; other contexts are refused with "user rejection".
//
// C-STORE: the handler runs on the association's reader goroutine and reads
// the data set straight from the socket (no buffering of the data set; memory
// per association is a few 64 KiB buffers whatever the instance size). The
// reader returns io.EOF after the last fragment and an error wrapping
// ErrClosed, *AbortError or ErrProtocol if the association breaks, so a
// handler must only commit after a clean EOF. Answer StatusSuccess only when
// the instance is durable; return a *StatusError (see Fail) to choose the
// failure status and error comment.
//
// C-FIND/C-MOVE/C-GET handlers run on their own goroutine; ctx is cancelled
// by C-CANCEL or when the association ends. For C-MOVE and C-GET the handler
// returns the instances (Instance.Open yields the data set bytes without file
// meta) and the server performs the C-STORE sub-operations, sends pending
// responses with the counters, honours C-CANCEL and reports failed SOP
// instance UIDs. C-MOVE opens an association to the Destination returned by
// MoveHandler.Destination; C-GET stores over the same association on the
// contexts for which the requestor took the SCP role. When the receiver does
// not accept the stored transfer syntax, Server.Transcode is asked; without
// it the sub-operation fails with a clear reason in the log.
//
// Limits: MaxAssociations (transient rejection beyond),
// MaxPendingAssociations (connections not yet associated; closed beyond, and
// request bodies are allocated as they arrive), MaxPDULength (what
// we advertise; we fragment to the peer's, and refuse peers announcing less
// than MinMaxPDULength), ARTIMTimeout (silent peers, close after
// release/reject), IdleTimeout (aborts stalled associations, also
// mid-data-set, but not while an operation runs), MaxIdentifierLength. The
// asynchronous operations window granted is one: a C-FIND, C-MOVE or C-GET
// sent while another runs is refused with Out of Resources (A700, or A701
// for C-MOVE/C-GET). Bad input never panics: malformed or
// unexpected PDUs get an A-ABORT with the matching reason and the server
// keeps serving. Each association has a random id in every log line; logs
// carry AE titles, addresses, SOP classes and statuses, never patient data.
//
// # Client (SCU)
//
//	a, err := dimse.Dial(ctx, "pacs:104", dimse.DialOptions{
//		CallingAE: "MOLAR", CalledAE: "PACS",
//		Contexts: append([]dimse.ProposedContext{dimse.VerificationContext()},
//			dimse.StorageContexts([]string{uid.DigitalIntraOralXRayForPresentation}, nil)...),
//	})
//	st, err := a.Echo(ctx)
//	st, err = a.Store(ctx, dimse.StoreParams{SOPClassUID: c, SOPInstanceUID: i, TransferSyntax: ts}, dataSet)
//	st, err = a.Find(ctx, uid.StudyRootQueryRetrieveFind, query, func(match *header.Dataset) error { ... })
//	res, err := a.Move(ctx, uid.StudyRootQueryRetrieveMove, "MOLAR", query, progress)
//	res, err = a.Get(ctx, uid.StudyRootQueryRetrieveGet, query, storeHandler, progress) // propose storage contexts with ProposeSCPRole
//	err = a.Release(ctx) // or a.Abort()
//
// A-ASSOCIATE-RJ is returned as *RejectedError. DIMSE statuses are returned as
// values (not errors); err reports transport, protocol and negotiation
// problems (ErrNoPresentationContext). Cancelling ctx during Find, Move or Get
// sends C-CANCEL; during Echo or Store it aborts the association.
//
// # Lower level
//
// EncodePDU / ReadPDU / DecodePDU encode and decode every PDU type with bounds
// checks (no length from the wire is allocated beyond MaxAssociatePDULength;
// P-DATA is streamed). Command and DecodeCommand handle DIMSE command sets
// (implicit VR little endian, group 0000 with group length). Status has the
// codes of PS3.7 Annex C and PS3.4 with names and categories.
package dimse
