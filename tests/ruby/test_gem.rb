# frozen_string_literal: true

require_relative "helper"
require "open3"

# The gem as users get it: `rake gem` (gem build with the generated wrapper
# and the C core inside), `gem install` into a fresh GEM_HOME (compiling the
# extension there, with no SWIG involved), then a round trip from a process
# that sees only that GEM_HOME.
class TestGem < ReactisTest
  def test_build_install_round_trip
    skip "REACTIS_SKIP_GEM_TEST=1" if ENV["REACTIS_SKIP_GEM_TEST"] == "1"
    out, status = Open3.capture2e(RbConfig.ruby, "-S", "rake", "-f", File.join(ROOT, "Rakefile"), "gem",
                                  chdir: ROOT)
    assert status.success?, "rake gem failed:\n#{out}"
    gem_file = Dir[File.join(ROOT, "build-ruby", "pkg", "reactis-#{Reactis::VERSION}.gem")].first
    refute_nil gem_file, out

    home = Dir.mktmpdir("reactis-gem-home")
    begin
      # No SWIG on the user's machine: a PATH without it must do.
      env = { "GEM_HOME" => home, "GEM_PATH" => home, "RUBYLIB" => nil, "RUBYOPT" => nil,
              "REACTIS_SWIG" => "/nonexistent/swig", "SWIG" => nil }
      out, status = Open3.capture2e(env, RbConfig.ruby, "-S", "gem", "install", "--local",
                                    "--no-document", gem_file)
      assert status.success?, "gem install failed:\n#{out}"
      so = Dir[File.join(home, "gems", "reactis-*", "lib", "reactis", "cimpl.*")].first
      refute_nil so, "no extension in the installed gem"

      # Only the Init function is exported: no hiredis (nor core) symbols.
      nm, st = Open3.capture2e("nm", "-D", "--defined-only", so) rescue [nil, nil]
      if st&.success?
        exported = nm.lines.map { |l| l.split.last }.compact
        assert_equal ["Init_cimpl"], exported.reject { |s| s.start_with?("_") }
        refute(exported.any? { |s| s.start_with?("redis") })
      end

      redis = server
      code = <<~RUBY
        require "reactis"
        feature = $LOADED_FEATURES.grep(%r{reactis/cimpl}).first
        abort "loaded from \#{feature}" unless feature.start_with?(#{home.inspect})
        sub = Reactis::Subscriber.new(#{redis.url.inspect})
        sub.subscribe("gem:chan")
        Reactis::Client.new(#{redis.url.inspect}).publish("gem:chan", "from the gem\\0\\xff".b)
        msg = sub.next_message(timeout: 5)
        puts [msg.channel, msg.data.bytesize, msg.data.encoding].inspect
      RUBY
      out, status = Open3.capture2e(env, RbConfig.ruby, "-e", code, chdir: home)
      assert status.success?, out
      assert_equal %(["gem:chan", 14, #<Encoding:ASCII-8BIT>]\n), out
    ensure
      FileUtils.rm_rf(home)
    end
  end
end
