module tmplcharness

go 1.19
