// Command longfuncs prints the longest functions under the folders it is given and fails when
// one is longer than -max lines (make vet runs it over wasm/). A function's length is the lines
// from its func keyword to its closing brace, doc comment not counted; build tags are ignored,
// so js-only and native files count alike, tests included.
package main

import (
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// fn is one function declaration and its length in lines.
type fn struct {
	pos   string // file:line
	name  string // Recv.Name or Name
	lines int
}

func main() {
	max := flag.Int("max", 100, "fail when a function is longer than this many lines (0: never fail)")
	top := flag.Int("n", 10, "how many of the longest functions to print")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: longfuncs [-max N] [-n N] dir...\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	var all []fn
	for _, dir := range flag.Args() {
		fns, err := scan(dir)
		if err != nil {
			fmt.Fprintln(os.Stderr, "longfuncs:", err)
			os.Exit(1)
		}
		all = append(all, fns...)
	}
	slices.SortStableFunc(all, func(a, b fn) int { return b.lines - a.lines })
	over := 0
	for i, f := range all {
		if *max > 0 && f.lines > *max {
			over++
		}
		if i < *top {
			fmt.Printf("%4d  %s  %s\n", f.lines, f.name, f.pos)
		}
	}
	if over > 0 {
		fmt.Fprintf(os.Stderr, "longfuncs: %d function(s) over %d lines\n", over, *max)
		os.Exit(1)
	}
}

// scan parses every .go file below dir and returns its function declarations.
func scan(dir string) ([]fn, error) {
	var out []fn
	fset := token.NewFileSet()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != dir && (name == "testdata" || strings.HasPrefix(name, ".") || name == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		for _, decl := range f.Decls {
			d, ok := decl.(*ast.FuncDecl)
			if !ok || d.Body == nil {
				continue
			}
			start := fset.Position(d.Pos())
			out = append(out, fn{
				pos:   fmt.Sprintf("%s:%d", path, start.Line),
				name:  funcName(d),
				lines: fset.Position(d.End()).Line - start.Line + 1,
			})
		}
		return nil
	})
	return out, err
}

// funcName is Name, or Recv.Name for a method.
func funcName(d *ast.FuncDecl) string {
	if d.Recv == nil || len(d.Recv.List) == 0 {
		return d.Name.Name
	}
	t := d.Recv.List[0].Type
	if s, ok := t.(*ast.StarExpr); ok {
		t = s.X
	}
	switch r := t.(type) {
	case *ast.IndexExpr:
		t = r.X
	case *ast.IndexListExpr:
		t = r.X
	}
	if id, ok := t.(*ast.Ident); ok {
		return id.Name + "." + d.Name.Name
	}
	return d.Name.Name
}
