# frozen_string_literal: true

# The reactis gem: the C core, the SWIG wrapper generated from
# bindings/reactis.i, and the Ruby classes. Build it from the repository root
# with `rake gem` (which generates the wrapper and copies the core next to
# this file, into build-ruby/gem/); installing it then needs a C compiler,
# libhiredis-dev and libssl-dev, but no SWIG.

require_relative "lib/reactis/version"

Gem::Specification.new do |s|
  s.name = "reactis"
  s.version = Reactis::VERSION
  s.summary = "Redis pub/sub, keyspace notifications and a delayed queue you can depend on"
  s.description = <<~TEXT
    A C library on hiredis and OpenSSL that makes Redis pub/sub survive the
    network (reconnects, resubscribes and tells you which window you may have
    missed), parses keyspace notifications binary-safely, enables them where
    CONFIG is allowed, and runs a reliable delayed queue on Redis Streams.
    Blocking calls release the GVL and stop at once on Ctrl-C, SIGTERM and
    Thread#kill; workers run as rake tasks from a Procfile.
  TEXT
  s.authors = ["The reactis authors"]
  s.required_ruby_version = ">= 2.7"

  wrapper = File.join(__dir__, "ext", "reactis", "reactis_wrap.c")
  unless File.file?(wrapper)
    warn "reactis.gemspec: ext/reactis/reactis_wrap.c is missing: build the gem with " \
         "`rake gem` at the repository root, which generates it and copies the C core"
  end

  s.files = Dir.chdir(__dir__) do
    Dir["lib/**/*.rb", "ext/reactis/extconf.rb", "ext/reactis/reactis_wrap.c",
        "ext/reactis/core/src/*.{c,h}", "ext/reactis/core/include/reactis/*.h",
        "ext/reactis/core/lua/*.lua", "README.md", "examples/**/*"].sort
  end
  s.extensions = ["ext/reactis/extconf.rb"]
  s.require_paths = ["lib"]
  s.metadata = { "rubygems_mfa_required" => "true" }
end
