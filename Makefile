# Building and installing safesock for C users.
#
#   make                                   build target/release/libsafesock.{so,a}
#   make install PREFIX=/usr/local DESTDIR=  install header, libraries and safesock.pc
#   make uninstall PREFIX=... DESTDIR=...    remove exactly what install put there
#
# The installed shared library is libsafesock.so.$(VERSION) with SONAME
# libsafesock.so.$(MAJOR), plus the usual libsafesock.so.$(MAJOR) and
# libsafesock.so symlinks. The C examples have their own Makefile in c_examples/.

PREFIX     ?= /usr/local
LIBDIR     ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
DESTDIR    ?=

CARGO   ?= cargo
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
MAJOR   := $(firstword $(subst ., ,$(VERSION)))
SONAME  := libsafesock.so.$(MAJOR)

# The installed shared library is linked with its SONAME in a target
# directory of its own, so the development build in target/release (used in
# place by the examples and tests) stays as cargo makes it.
INSTALL_TARGET := target/install
INSTALL_SO     := $(INSTALL_TARGET)/release/libsafesock.so

.PHONY: all install uninstall clean safesock.pc

all:
	$(CARGO) build --release

$(INSTALL_SO): Cargo.toml Cargo.lock build.rs $(shell find src -name '*.rs')
	$(CARGO) rustc --release --lib --crate-type cdylib --target-dir $(INSTALL_TARGET) \
		-- -C link-arg=-Wl,-soname,$(SONAME)

# Phony: the file depends on PREFIX and the other directories, not only on its inputs.
safesock.pc: safesock.pc.in Cargo.toml
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
	    -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' -e 's|@VERSION@|$(VERSION)|' $< > $@

install: all $(INSTALL_SO) safesock.pc
	install -d $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(PKGCONFIGDIR)
	install -m 644 include/safesock.h $(DESTDIR)$(INCLUDEDIR)/safesock.h
	install -m 644 target/release/libsafesock.a $(DESTDIR)$(LIBDIR)/libsafesock.a
	install -m 755 $(INSTALL_SO) $(DESTDIR)$(LIBDIR)/libsafesock.so.$(VERSION)
	ln -sf libsafesock.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libsafesock.so
	install -m 644 safesock.pc $(DESTDIR)$(PKGCONFIGDIR)/safesock.pc

uninstall:
	rm -f $(DESTDIR)$(INCLUDEDIR)/safesock.h
	rm -f $(DESTDIR)$(LIBDIR)/libsafesock.a
	rm -f $(DESTDIR)$(LIBDIR)/libsafesock.so.$(VERSION)
	rm -f $(DESTDIR)$(LIBDIR)/$(SONAME) $(DESTDIR)$(LIBDIR)/libsafesock.so
	rm -f $(DESTDIR)$(PKGCONFIGDIR)/safesock.pc

clean:
	rm -f safesock.pc
	$(CARGO) clean
