package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"
)

// cmd/chatpay wires and parses flags; domain work belongs to the domains
// (docs/architecture.md). This keeps ledger postings and SQL out of its
// non-test files.
func TestCmdDoesNoDomainWork(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	banned := map[string]string{
		"Post": "a ledger posting", "Debit": "a ledger posting", "Credit": "a ledger posting",
		"ExecContext": "SQL", "GetContext": "SQL", "SelectContext": "SQL", "QueryContext": "SQL",
	}
	fset := token.NewFileSet()
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if what, found := banned[sel.Sel.Name]; found {
				t.Errorf("%s: %s in cmd (%s); give the owning domain a method", fset.Position(call.Pos()), what, sel.Sel.Name)
			}
			return true
		})
	}
}
