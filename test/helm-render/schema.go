package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/xeipuuv/gojsonschema"
)

// validateAgainstSchema is Helm's chartutil.ValidateAgainstSingleSchema (Helm
// itself uses gojsonschema), with the offending value appended to each line.
func validateAgainstSchema(schemaJSON []byte, values map[string]interface{}) error {
	valuesJSON, err := json.Marshal(values)
	if err != nil {
		return err
	}
	if bytes.Equal(valuesJSON, []byte("null")) {
		valuesJSON = []byte("{}")
	}
	result, err := gojsonschema.Validate(gojsonschema.NewBytesLoader(schemaJSON), gojsonschema.NewBytesLoader(valuesJSON))
	if err != nil {
		return fmt.Errorf("cannot validate against values.schema.json: %v", err)
	}
	if result.Valid() {
		return nil
	}
	var sb strings.Builder
	for _, desc := range result.Errors() {
		line := desc.String()
		if v, err := json.Marshal(desc.Value()); err == nil && desc.Type() != "required" && len(v) <= 200 {
			line += fmt.Sprintf(" (value: %s)", v)
		}
		sb.WriteString("- " + line + "\n")
	}
	return fmt.Errorf("%s", sb.String())
}
