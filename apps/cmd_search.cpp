// placeholder: kdnas search, being written
