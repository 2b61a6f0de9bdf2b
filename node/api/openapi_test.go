package api_test

import (
	"bufio"
	"bytes"
	"reflect"
	"slices"
	"strings"
	"testing"

	"xnode/node/api"
	"xnode/node/api/apitest"
	"xnode/node/datasets"
)

// specRoutes reads "METHOD /path" for every operation under paths: of the
// embedded document, turning {param} segments into the mux's form.
func specRoutes(t *testing.T) []string {
	t.Helper()
	var routes []string
	var path string
	inPaths := false
	sc := bufio.NewScanner(bytes.NewReader(api.OpenAPI))
	for sc.Scan() {
		line := sc.Text()
		indent := len(line) - len(strings.TrimLeft(line, " "))
		key, _, _ := strings.Cut(strings.TrimSpace(line), ":")
		switch {
		case indent == 0 && strings.TrimSpace(line) != "":
			inPaths = key == "paths"
		case !inPaths:
		case indent == 2:
			path = key
		case indent == 4 && slices.Contains([]string{"get", "post", "put", "patch", "delete"}, key):
			routes = append(routes, strings.ToUpper(key)+" "+path)
		}
	}
	if len(routes) == 0 {
		t.Fatal("found no operations under paths: in openapi.yaml")
	}
	slices.Sort(routes)
	return routes
}

func TestOpenAPIMatchesRoutes(t *testing.T) {
	spec := specRoutes(t)
	served := api.NewServer(apitest.NewFake(), "t", nil).Routes()
	slices.Sort(served)
	for _, r := range served {
		if !slices.Contains(spec, r) {
			t.Errorf("the server registers %q but openapi.yaml does not describe it", r)
		}
	}
	for _, r := range spec {
		if !slices.Contains(served, r) {
			t.Errorf("openapi.yaml describes %q but the server does not register it", r)
		}
	}
}

// specProperties returns the property names of schema name in the
// embedded document (including those of allOf parts written inline).
func specProperties(t *testing.T, name string) []string {
	t.Helper()
	var props []string
	in, inProps := false, false
	propIndent := 0
	sc := bufio.NewScanner(bytes.NewReader(api.OpenAPI))
	for sc.Scan() {
		line := sc.Text()
		indent := len(line) - len(strings.TrimLeft(line, " "))
		key, _, _ := strings.Cut(strings.TrimSpace(line), ":")
		if indent == 4 {
			in = key == name
			inProps = false
			continue
		}
		if !in {
			continue
		}
		if key == "properties" {
			inProps, propIndent = true, indent+2
			continue
		}
		if inProps && indent == propIndent {
			props = append(props, key)
		} else if inProps && indent < propIndent {
			inProps = false
		}
	}
	return props
}

// jsonFields returns the JSON names of t's fields, flattening embedded
// structs.
func jsonFields(typ reflect.Type) []string {
	var out []string
	for f := range typ.Fields() {
		if f.Anonymous {
			out = append(out, jsonFields(f.Type)...)
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name != "" && name != "-" {
			out = append(out, name)
		}
	}
	return out
}

func TestOpenAPIMatchesTypes(t *testing.T) {
	for schema, v := range map[string]any{
		"Error": api.Error{}, "NodeInfo": api.NodeInfo{}, "PeerInfo": api.PeerInfo{},
		"AddPeerRequest": api.AddPeerRequest{}, "ImportRequest": api.ImportRequest{}, "ImportEvent": api.ImportEvent{},
		"ImportReport": datasets.Report{}, "RowError": datasets.RowError{}, "Column": datasets.Column{},
		"DatasetInfo": datasets.Info{}, "DatasetDetail": api.DatasetDetail{}, "DropResult": api.DropResult{},
		"QueryRequest": api.QueryRequest{}, "Query": api.Query{}, "QuerySummary": api.QuerySummary{},
		"ResultTable": api.ResultTable{}, "Progress": api.Progress{},
		"PluginRef": api.PluginRef{}, "PeerState": api.PeerState{}, "DenyRequest": api.DenyRequest{},
		"PluginInfo": api.PluginInfo{}, "InstallPluginRequest": api.InstallPluginRequest{},
		"AuditEntry": api.AuditEntry{}, "AuditReport": api.AuditReport{},
	} {
		got := specProperties(t, schema)
		if schema == "DatasetDetail" {
			got = append(got, specProperties(t, "DatasetInfo")...)
		}
		want := jsonFields(reflect.TypeOf(v))
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("openapi.yaml schema %s has properties %v, want the Go type's JSON fields %v", schema, got, want)
		}
	}
}
