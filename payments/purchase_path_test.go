package payments

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestOnePurchasePath holds the callers of a purchase to Buy: the shopper
// page's purchase (its "Buy now" and "Top up and pay"), the channel API's
// one-call purchase and confirm and the bench's
// direct purchase. Each must call Buy and none may run a step of a purchase
// itself (resolve or consume a code, take stock, post to the ledger, open a
// till code), so that what the bench measures and what every shopper runs
// cannot drift apart. confirm and payTillCheckout are unexported, so the
// compiler already keeps other packages from paying around Buy.
func TestOnePurchasePath(t *testing.T) {
	callers := []struct{ dir, receiver, name string }{
		{"../web", "Shopper", "purchase"},
		{".", "HTTP", "confirm"},
		{".", "HTTP", "purchase"},
		{"../cmd/chatpay", "benchApp", "Purchase"},
	}
	steps := []string{"Resolve", "Consume", "TakeStock", "ReturnStock", "Post", "CreateDynamic", "confirm", "payTillCheckout"}
	for _, c := range callers {
		fn := findMethod(t, c.dir, c.receiver, c.name)
		called := calledNames(fn)
		if called["Buy"] == 0 {
			t.Errorf("%s (%s).%s does not call payments' Buy", c.dir, c.receiver, c.name)
		}
		for _, step := range steps {
			if called[step] > 0 {
				t.Errorf("%s (%s).%s runs the purchase step %s itself; call Buy", c.dir, c.receiver, c.name, step)
			}
		}
	}
}

// findMethod parses the non-test Go files of dir and returns the method
// name of the type receiver.
func findMethod(t *testing.T, dir, receiver, name string) *ast.FuncDecl {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		src, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(fset, path, src, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if ok && fn.Name.Name == name && fn.Recv != nil && receiverName(fn.Recv.List[0].Type) == receiver {
				return fn
			}
		}
	}
	t.Fatalf("no method (%s).%s in %s", receiver, name, dir)
	return nil
}

func receiverName(expr ast.Expr) string {
	if star, ok := expr.(*ast.StarExpr); ok {
		expr = star.X
	}
	if id, ok := expr.(*ast.Ident); ok {
		return id.Name
	}
	return ""
}

// calledNames counts the functions and methods fn calls, by their last name.
func calledNames(fn *ast.FuncDecl) map[string]int {
	called := map[string]int{}
	ast.Inspect(fn, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok {
			return true
		}
		switch f := call.Fun.(type) {
		case *ast.SelectorExpr:
			called[f.Sel.Name]++
		case *ast.Ident:
			called[f.Name]++
		}
		return true
	})
	return called
}

// TestFileRoles keeps payments' files to their roles (docs/architecture.md):
// echo only in *http.go and auth.go, and no SQL in the HTTP files, whose
// handlers call the service.
func TestFileRoles(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
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
		httpFile := strings.HasSuffix(path, "http.go")
		for _, imp := range f.Imports {
			if strings.Contains(imp.Path.Value, "labstack/echo") && !httpFile && path != "auth.go" {
				t.Errorf("%s imports echo; only *http.go and auth.go may", path)
			}
		}
		if !httpFile {
			continue
		}
		ast.Inspect(f, func(n ast.Node) bool {
			lit, ok := n.(*ast.BasicLit)
			if ok && lit.Kind == token.STRING && sqlStatement(lit.Value) {
				t.Errorf("%s: SQL in an HTTP file (%s); move it into the flow's service", fset.Position(lit.Pos()), lit.Value)
			}
			return true
		})
	}
}

func sqlStatement(literal string) bool {
	text := strings.ToUpper(strings.TrimLeft(strings.Trim(literal, "`\""), " \t\n"))
	for _, verb := range []string{"SELECT ", "INSERT ", "UPDATE ", "DELETE "} {
		if strings.HasPrefix(text, verb) {
			return true
		}
	}
	return false
}
