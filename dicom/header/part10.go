package header

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
)

// Implementation identity written into file meta.
const (
	MetaImplementationClassUID = "2.25.271722841182218180260196051945293747180"
	MetaImplementationVersion  = "MOLAR_1"
)

// FileMeta builds the group 0002 elements of a Part-10 file.
func FileMeta(sopClass, sopInstance, transferSyntax string) *Dataset {
	m := NewDataset()
	m.Set(&Element{Tag: TagFileMetaVersion, VR: "OB", Value: []byte{0, 1}})
	m.SetString(TagMediaStorageSOPClassUID, "UI", sopClass)
	m.SetString(TagMediaStorageSOPInstance, "UI", sopInstance)
	m.SetString(TagTransferSyntaxUID, "UI", transferSyntax)
	m.SetString(TagImplementationClassUID, "UI", MetaImplementationClassUID)
	m.SetString(TagImplementationVersion, "SH", MetaImplementationVersion)
	return m
}

// WriteFileHeader writes the 128-byte preamble, "DICM" and the file meta
// (explicit VR little endian, with group length). The data set, encoded in
// transferSyntax, follows it to make a Part-10 file.
func WriteFileHeader(w io.Writer, sopClass, sopInstance, transferSyntax string) error {
	return WriteFileHeaderMeta(w, FileMeta(sopClass, sopInstance, transferSyntax))
}

// WriteFileHeaderMeta writes preamble, "DICM" and the given meta elements
// (any group length element in meta is recomputed).
func WriteFileHeaderMeta(w io.Writer, meta *Dataset) error {
	m := &Dataset{Elements: append([]*Element(nil), meta.Elements...)}
	m.Remove(TagFileMetaGroupLength)
	body, err := m.Encode("1.2.840.10008.1.2.1")
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	buf.Write(make([]byte, 128))
	buf.WriteString("DICM")
	gl := &Dataset{}
	gl.Set(&Element{Tag: TagFileMetaGroupLength, VR: "UL", Value: binary.LittleEndian.AppendUint32(nil, uint32(len(body)))})
	if err := gl.WriteTo(&buf, "1.2.840.10008.1.2.1"); err != nil {
		return err
	}
	buf.Write(body)
	if _, err := w.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("header: write file meta: %w", err)
	}
	return nil
}
