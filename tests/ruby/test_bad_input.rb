# frozen_string_literal: true

# The bad-input catalog (README "Bad input: what each gets") from Ruby: one
# test per row, named test_row_NN_..., with the row numbers of the C test
# (tests/c/test_bad_input.c) and the Python one (tests/python/test_bad_input.py).
#
# Every bad input raises a typed error (a Reactis::Error subclass chosen by
# the C core, or the Ruby exception the wrapper documents for wrong Ruby
# arguments: ArgumentError, TypeError, RangeError), never crashes, never puts
# a password in a message or #inspect, and loses nothing. Servers: one
# redis-server with a password, an ACL user and CONFIG renamed away; one TLS
# server with certificates made here by the openssl CLI; and tiny fake
# servers (one thread, a few connections) that send what Redis never sends.

require_relative "helper"
require "open3"

class TestBadInput < ReactisTest
  PW = "s3cr3t-pw"

  # ---------------------------------------------------------------- shared servers

  # Started once for the whole class (stopped at exit by RedisServer::ALL).
  def self.auth_server
    @auth_server ||= RedisServer.new(["--rename-command", "CONFIG", "",
                                      "--user", "alice", "on", ">alice-#{PW}", "~*", "&*", "+@all"],
                                     password: PW).start
  end

  # A CA and a server certificate for DNS name "localhost" only (so that
  # connecting to 127.0.0.1 fails the host name check), as tests/python's
  # make_certs does.
  def self.make_certs(dir)
    FileUtils.mkdir_p(dir)
    f = ->(n) { File.join(dir, n) }
    run = lambda do |*args|
      out, status = Open3.capture2e("openssl", *args)
      raise "openssl #{args.first} failed: #{out}" unless status.success?
    end
    run.call("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
             "/CN=reactis test CA", "-keyout", f["ca.key"], "-out", f["ca.pem"])
    run.call("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
             "-keyout", f["server.key"], "-out", f["server.csr"])
    File.write(f["ext.cnf"], "subjectAltName=DNS:localhost\n")
    run.call("x509", "-req", "-in", f["server.csr"], "-CA", f["ca.pem"], "-CAkey", f["ca.key"],
             "-CAcreateserial", "-days", "2", "-extfile", f["ext.cnf"], "-out", f["server.pem"])
    { ca: f["ca.pem"], cert: f["server.pem"], key: f["server.key"] }
  end

  def self.certs_dir
    @certs_dir ||= Dir.mktmpdir("reactis-rb-certs").tap do |d|
      at_exit { FileUtils.rm_rf(d) }
    end
  end

  # [server, tls_port, certs]: plain TCP on server.port, TLS on tls_port.
  def self.tls_server
    @tls_server ||= begin
      certs = make_certs(File.join(certs_dir, "server"))
      tls_port = RedisServer.free_port
      s = RedisServer.new(["--tls-port", tls_port.to_s, "--tls-cert-file", certs[:cert],
                           "--tls-key-file", certs[:key], "--tls-ca-cert-file", certs[:ca],
                           "--tls-auth-clients", "no"]).start
      [s, tls_port, certs]
    end
  end

  def auth_server
    self.class.auth_server
  end

  def base
    "redis://:#{PW}@127.0.0.1:#{auth_server.port}"
  end

  def tls
    skip "openssl not found" unless system("command -v openssl >/dev/null 2>&1")
    self.class.tls_server
  end

  @@n = 0

  def qname
    @qname ||= "bad.#{name}.#{@@n += 1}"
  end

  # ---------------------------------------------------------------- checks

  def no_pw(text)
    refute_includes text.to_s, "s3cr3t", text
  end

  def no_pw_in(err)
    no_pw(err.message)
    no_pw(err.inspect)
    no_pw(err.full_message(highlight: false))
  end

  # A fake server: a loopback listener served by a thread. For each
  # connection (at most 4, one at a time) it waits for the request's first
  # bytes (up to 2 s), sends reply, holds the connection for hold seconds (or
  # until the client closes it) and closes it. Bounded in time.
  class Fake
    attr_reader :port

    def initialize(reply, hold: 0.0)
      @reply = reply.b
      @hold = hold
      @server = TCPServer.new("127.0.0.1", 0)
      @port = @server.addr[1]
      @thread = Thread.new { serve }
    end

    def url
      "redis://127.0.0.1:#{@port}"
    end

    def close
      @thread.join(10) || @thread.kill
      @server.close
    end

    private

    def serve
      4.times do |i|
        break unless IO.select([@server], nil, nil, i.zero? ? 5.0 : 0.1)
        c = @server.accept
        begin
          c.readpartial(4096) if IO.select([c], nil, nil, 2.0)
          c.write(@reply) unless @reply.empty?
          deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + @hold
          while (left = deadline - Process.clock_gettime(Process::CLOCK_MONOTONIC)).positive?
            next unless IO.select([c], nil, nil, [left, 0.05].min)
            c.readpartial(4096)
          end
        rescue IOError, SystemCallError
          nil
        ensure
          c.close
        end
      end
    rescue IOError, SystemCallError
      nil
    end
  end

  def with_fake(reply, hold: 0.0)
    f = Fake.new(reply, hold: hold)
    yield f
  ensure
    f&.close
  end

  # The error of a PING to a fake server that sends reply.
  def fake_ping(reply, hold: 0.0, **options)
    with_fake(reply, hold: hold) do |f|
      c = Reactis::Client.new(f.url, **options)
      begin
        assert_raises(Reactis::Error) { c.ping }
      ensure
        c.close
      end
    end
  end

  # Fetches, acks everything, and checks that id with payload was there.
  def take(q, id, payload)
    jobs = q.fetch(max: 10, timeout: 2)
    found = jobs.select { |j| j.id == id.b && j.payload == payload.b }
    jobs.each(&:ack!)
    refute_empty found, jobs.inspect
  end

  def queue(name = qname, **options)
    closing(Reactis::Queue.new(name, url: base, **options))
  end

  # ---------------------------------------------------------------- rows 1-8: URLs, options

  BAD_URLS = {
    1 => ["", "empty"],
    2 => ["http://127.0.0.1:6379", "scheme"],
    3 => ["redis://:#{PW}@127.0.0.1:99999", 'bad port "99999"'],
    4 => ["redis://[::1:6379", "IPv6"],
    5 => ["redis://:s3cr3t%zz@127.0.0.1:6379", "%-escape"],
    6 => ["redis://:#{PW}@127.0.0.1:6379?tiemout=5", 'unknown option "tiemout"'],
    7 => ["redis://:#{PW}@127.0.0.1:6379?timeout=1e10", 'invalid value "1e10" for option timeout']
  }.freeze

  def assert_bad_url(url, gist)
    [->(u) { Reactis::Client.new(u) }, ->(u) { Reactis::Subscriber.new(u) },
     ->(u) { Reactis::Queue.new("q", url: u) }].each do |make|
      err = assert_raises(Reactis::URLError) { make.call(url) }
      assert_equal "EURL", err.name
      assert_kind_of Reactis::InvalidArgumentError, err
      assert_includes err.message, gist
      no_pw_in(err)
    end
  end

  def test_row_01_empty_url
    assert_bad_url(*BAD_URLS[1])
  end

  def test_row_02_unknown_scheme
    assert_bad_url(*BAD_URLS[2])
  end

  def test_row_03_bad_port
    assert_bad_url(*BAD_URLS[3])
    assert_bad_url("redis://127.0.0.1:port", "bad port")
  end

  def test_row_04_unterminated_ipv6
    assert_bad_url(*BAD_URLS[4])
  end

  def test_row_05_bad_percent_escape
    assert_bad_url(*BAD_URLS[5])
  end

  def test_row_06_unknown_option
    assert_bad_url(*BAD_URLS[6])
    # Through keyword options too.
    [-> { Reactis::Client.new("redis://127.0.0.1:6379", tiemout: 5) },
     -> { Reactis::Subscriber.new("redis://127.0.0.1:6379", tiemout: 5) },
     -> { Reactis::Queue.new("q", url: "redis://127.0.0.1:6379", tiemout: 5) }].each do |make|
      err = assert_raises(Reactis::URLError, &make)
      assert_includes err.message, 'unknown option "tiemout"'
    end
  end

  def test_row_07_bad_option_value
    assert_bad_url(*BAD_URLS[7])
    assert_bad_url("redis://127.0.0.1:6379?timeout=-1", 'invalid value "-1" for option timeout')
    assert_bad_url("redis://127.0.0.1:6379?ssl_cert_reqs=maybe", "invalid value")
    err = assert_raises(Reactis::URLError) { Reactis::Client.new("redis://127.0.0.1:6379", ssl_cert_reqs: "maybe") }
    assert_includes err.message, "invalid value"
    # A negative keyword number is refused in Ruby first.
    assert_raises(ArgumentError) { Reactis::Client.new("redis://127.0.0.1:6379", timeout: -1) }
  end

  def test_row_08_hostile_client_name
    assert_bad_url("redis://:#{PW}@127.0.0.1:6379?client_name=a%0D%0APING", "invalid value")
    assert_bad_url("redis://127.0.0.1:6379?client_name=a%20b", "invalid value")
    err = assert_raises(Reactis::URLError) { Reactis::Client.new("redis://127.0.0.1:6379", client_name: "a\r\nPING") }
    assert_includes err.message, "for option client_name"
    assert_raises(Reactis::URLError) { Reactis::Client.new("redis://127.0.0.1:6379", client_name: "a b") }
    # Not valid UTF-8: still only bytes the core checks.
    assert_raises(Reactis::URLError) { Reactis::Client.new("redis://127.0.0.1:6379?client_name=\xff".b) }
    # NUL cannot reach C (a C string): Ruby's ArgumentError.
    assert_raises(ArgumentError) { Reactis::Client.new("redis://127.0.0.1:6379\0?x=1") }
    assert_raises(ArgumentError) { Reactis::Client.new("redis://127.0.0.1:6379", client_name: "a\0b") }
  end

  # ---------------------------------------------------------------- rows 9-10

  def test_row_09_long_host
    c = closing(Reactis::Client.new("redis://:#{PW}@#{'h' * 5000}:6379"))
    t0 = monotonic
    err = assert_raises(Reactis::ResolveError) { c.connect }
    assert_operator monotonic - t0, :<, 2
    assert_kind_of Reactis::ConnectionError, err
    assert_includes err.message, "cannot resolve"
    no_pw_in(err)
    no_pw(c.inspect)
  end

  def test_row_10_database_out_of_range
    c = closing(Reactis::Client.new("#{base}/99"))
    err = assert_raises(Reactis::URLError) { c.connect }
    assert_includes err.message, "DB index is out of range"
    no_pw_in(err)
  end

  # ---------------------------------------------------------------- rows 11-17: auth, TLS

  def test_row_11_wrong_password
    c = closing(Reactis::Client.new("redis://:s3cr3t-wrong@127.0.0.1:#{auth_server.port}"))
    err = assert_raises(Reactis::AuthenticationError) { c.ping }
    assert_equal "EAUTH", err.name
    assert_kind_of Reactis::ConnectionError, err
    assert_includes err.message, "as default failed"
    no_pw_in(err)
    no_pw(c.inspect)
    no_pw(c.url)
    no_pw(c.to_s)
    s = closing(Reactis::Subscriber.new("redis://:s3cr3t-wrong@127.0.0.1:#{auth_server.port}"))
    no_pw(s.inspect)
    q = closing(Reactis::Queue.new(qname, url: "redis://:s3cr3t-wrong@127.0.0.1:#{auth_server.port}"))
    no_pw(q.inspect)
    err = assert_raises(Reactis::AuthenticationError) { q.stats }
    no_pw_in(err)
  end

  def test_row_12_unknown_acl_user
    c = closing(Reactis::Client.new("redis://nobody:#{PW}@127.0.0.1:#{auth_server.port}"))
    err = assert_raises(Reactis::AuthenticationError) { c.ping }
    assert_includes err.message, "nobody"
    no_pw_in(err)
    no_pw(c.inspect)
    ok = closing(Reactis::Client.new("redis://alice:alice-#{PW}@127.0.0.1:#{auth_server.port}"))
    assert ok.ping
  end

  def test_row_13_tls_against_plain
    srv, = tls
    c = closing(Reactis::Client.new("rediss://127.0.0.1:#{srv.port}?ssl_cert_reqs=none&connect_timeout=0.5"))
    t0 = monotonic
    err = assert_raises(Reactis::TimeoutError, Reactis::TLSError) { c.connect }
    assert_operator monotonic - t0, :<, 5
    assert_includes err.message, "is the server using TLS"
  end

  def test_row_14_plain_against_tls
    _, tls_port, = tls
    c = closing(Reactis::Client.new("redis://127.0.0.1:#{tls_port}?timeout=2"))
    assert_raises(Reactis::ConnectionLostError, Reactis::ProtocolError) { c.ping }
  end

  def test_row_15_wrong_ca
    _, tls_port, = tls
    other = self.class.make_certs(File.join(self.class.certs_dir, "other-#{@@n += 1}"))
    c = closing(Reactis::Client.new("rediss://:#{PW}@localhost:#{tls_port}?ssl_ca_certs=#{other[:ca]}"))
    err = assert_raises(Reactis::TLSVerifyError) { c.connect }
    assert_kind_of Reactis::TLSError, err
    assert_equal "ETLSVERIFY", err.name
    assert_includes err.message, "not accepted"
    no_pw_in(err)
    no_pw(c.inspect)
  end

  def test_row_16_host_name_mismatch
    # The certificate names "localhost" only; 127.0.0.1 is another name.
    _, tls_port, certs = tls
    c = closing(Reactis::Client.new("rediss://127.0.0.1:#{tls_port}", ssl_ca_certs: certs[:ca]))
    err = assert_raises(Reactis::TLSVerifyError) { c.connect }
    assert_includes err.message, "another host name"
    # The right name with the right CA is accepted.
    ok = closing(Reactis::Client.new("rediss://localhost:#{tls_port}", ssl_ca_certs: certs[:ca]))
    assert ok.ping
  end

  def test_row_17_self_signed_without_ca
    _, tls_port, = tls
    c = closing(Reactis::Client.new("rediss://localhost:#{tls_port}"))
    err = assert_raises(Reactis::TLSVerifyError) { c.connect }
    assert_includes err.message, "ssl_cert_reqs=none"
    ok = closing(Reactis::Client.new("rediss://localhost:#{tls_port}", ssl_cert_reqs: "none"))
    assert ok.ping
  end

  # ---------------------------------------------------------------- rows 18-26: the server

  def test_row_18_config_forbidden
    c = closing(Reactis::Client.new(base))
    err = assert_raises(Reactis::ConfigForbiddenError) { c.enable_keyspace_events("Ex") }
    assert_kind_of Reactis::ReplyError, err
    assert_equal "ECONFIG", err.name
    assert_includes err.message, "notify-keyspace-events"
    no_pw_in(err)
    assert c.ping # the link still works
  end

  def test_row_19_unknown_notification_flags
    c = closing(Reactis::Client.new(base))
    err = assert_raises(Reactis::InvalidArgumentError) { c.enable_keyspace_events("Exq") }
    assert_includes err.message, "'q'"
    assert_equal "EINVAL", err.name
    assert_raises(Reactis::InvalidArgumentError) { Reactis.enable_keyspace_events(base, "Exq") }
    assert_raises(TypeError) { c.enable_keyspace_events(nil) }
    assert c.ping
  end

  def test_row_20_connection_refused
    port = RedisServer.free_port
    c = closing(Reactis::Client.new("redis://:#{PW}@127.0.0.1:#{port}"))
    err = assert_raises(Reactis::ConnectionError) { c.ping }
    assert_equal "ECONNECT", err.name
    assert_includes err.message, "refused"
    no_pw_in(err)
  end

  def test_row_21_timeouts
    t0 = monotonic
    err = fake_ping("", hold: 0.8, timeout: 0.3)
    assert_instance_of Reactis::TimeoutError, err
    assert_includes err.message, "did not reply within 300 ms"
    assert_operator monotonic - t0, :>=, 0.29
    assert_operator monotonic - t0, :<, 2.5
    with_fake("", hold: 0.8) do |f|
      c = closing(Reactis::Client.new("redis://:#{PW}@127.0.0.1:#{f.port}?connect_timeout=0.3"))
      err = assert_raises(Reactis::TimeoutError) { c.connect }
      assert_includes err.message, "handshake"
      no_pw_in(err)
      no_pw(c.inspect)
      c.close
    end
    with_fake("", hold: 0.8) do |f|
      q = closing(Reactis::Queue.new(qname, url: f.url, timeout: 0.3))
      err = assert_raises(Reactis::TimeoutError) { q.schedule("p") }
      assert_includes err.message, "queue '#{qname}'"
      q.close
    end
  end

  def test_row_22_closed_mid_reply
    err = fake_ping("$10\r\nhel", timeout: 3)
    assert_instance_of Reactis::ConnectionLostError, err
    assert_equal "EIO", err.name
    assert_includes err.message, "closed by the server"
  end

  def test_row_23_not_redis
    http = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"
    err = fake_ping(http, hold: 0.3, timeout: 3)
    assert_instance_of Reactis::ProtocolError, err
    assert_includes err.message, "is it a Redis server?"
    with_fake(http, hold: 0.3) do |f|
      q = closing(Reactis::Queue.new(qname, url: f.url, timeout: 3))
      assert_raises(Reactis::ProtocolError) { q.stats }
      q.close
    end
  end

  def test_row_24_hostile_array_length
    arr = "*2147483647\r\n:1\r\n:2\r\n"
    assert_instance_of Reactis::ConnectionLostError, fake_ping(arr, timeout: 3)
    assert_instance_of Reactis::TimeoutError, fake_ping(arr, hold: 0.8, timeout: 0.3)
  end

  def test_row_25_lengths_out_of_range
    ["*99999999999\r\n", "$-7\r\n"].each do |reply|
      err = fake_ping(reply, hold: 0.3, timeout: 3)
      assert_instance_of Reactis::ProtocolError, err, reply
      assert_includes err.message, "protocol error"
    end
    err = fake_ping("$9223372036854775807\r\nabc", timeout: 3)
    assert_includes [Reactis::ProtocolError, Reactis::ConnectionLostError], err.class
  end

  def test_row_26_unknown_type_byte
    err = fake_ping("?what\r\n", hold: 0.3, timeout: 3)
    assert_instance_of Reactis::ProtocolError, err
    assert_includes err.message, 'got "?"'
  end

  # ---------------------------------------------------------------- rows 27-38: the queue

  def test_row_27_payload_over_limit
    q = queue
    err = assert_raises(Reactis::PayloadTooLargeError) { q.schedule("\0" * 1_048_577, id: "big") }
    assert_equal "ETOOBIG", err.name
    assert_includes err.message, "max_payload"
    assert_includes err.message, "queue '#{qname}'"
    if q.respond_to?(:schedule_many) # batch_add refuses it too, nothing sent
      assert_raises(Reactis::PayloadTooLargeError) { q.schedule_many([{ payload: "\0" * 1_048_577, id: "big" }]) }
      assert_equal 0, q.stats[:scheduled]
    end
    q.schedule("\0" * 1_048_576, id: "big") # the limit itself is fine
    take(q, "big", "\0" * 1_048_576)
    assert_raises(TypeError) { q.schedule(nil) }
    assert_raises(TypeError) { q.schedule(42) }
  end

  # The C core accepts an empty id on schedule (and generates one); the Ruby
  # wrapper (Queue#message_id) refuses it, and a 257-byte id, before C with
  # ArgumentError. Both are accepted here until the wrapper follows the core.
  def test_row_28_empty_id
    q = queue
    s = q.schedule("g", id: "")
    assert_equal 12, s.id.bytesize
    (job,) = q.fetch(max: 1, timeout: 2)
    assert_equal "g", job.payload
    job.ack!
    [-> { q.cancel("") }, -> { q.reschedule("", delay: 1) }, -> { q.run_now("") }].each do |call|
      err = assert_raises(Reactis::InvalidArgumentError, &call)
      assert_match(/message id/, err.message)
    end
    assert_equal 0, q.stats[:scheduled]
  end

  def test_row_29_id_too_long
    q = queue
    err = assert_raises(Reactis::InvalidArgumentError) { q.schedule("p", id: "i" * 257) }
    assert_match(/256/, err.message)
    q.schedule("p", id: "i" * 256)
    take(q, "i" * 256, "p")
  end

  def test_row_30_binary_and_non_utf8_names
    # Queue names are any bytes but NUL, '{' and '}'; ids and payloads any
    # bytes, NUL and invalid UTF-8 included, byte for byte.
    name = "bin\xff\xfe\x01 q\xc3\x28.#{@@n += 1}".b
    q = queue(name)
    assert_equal name, q.name
    bid = "id\0\xff\xfe\r\n end".b
    pl = "\0\xff payload \0\x80".b
    q.schedule(pl, id: bid)
    take(q, bid, pl)
    q.schedule("x", id: bid, delay: 60)
    assert q.cancel(bid)
    refute q.cancel(bid)
    uq = queue("bin.\u00e9\u{1F600}.#{@@n += 1}")
    uq.schedule("caf\u00e9", id: "\u00e9") # UTF-8 Strings: their bytes
    take(uq, "\u00e9", "caf\u00e9")
    assert_raises(TypeError) { Reactis::Queue.new(42, url: base) }
  end

  def test_row_31_nul_bytes
    c = closing(Reactis::Client.new(base))
    sub = closing(Reactis::Subscriber.new(base))
    key = "k\0\r\n\xff".b
    val = "\0v\0\r\n".b
    assert_equal "OK", c.command("SET", key, val)
    assert_equal val, c.command("GET", key)
    ch = "ch\0\xff\n".b
    sub.subscribe(ch)
    assert_equal 1, c.publish(ch, val)
    msg = sub.next_message(timeout: 2)
    refute_nil msg
    assert_equal ch, msg.channel
    assert_equal val, msg.data
    assert_raises(TypeError) { c.command("GET", nil) }
    assert_raises(TypeError) { c.publish(nil, "x") }
    assert c.ping
    # A queue name is a C string: NUL cannot be in it.
    assert_raises(ArgumentError) { Reactis::Queue.new("a\0b", url: base) }
  end

  # The same typed error as Python's (the core's EINVAL).
  def test_row_32_bad_queue_names
    ["", "a{b", "a}b", "{tag}", "n" * 201].each do |n|
      err = assert_raises(Reactis::InvalidArgumentError) { Reactis::Queue.new(n, url: base) }
      assert_match(/invalid queue name/, err.message)
    end
    assert_raises(TypeError) { Reactis::Queue.new(nil, url: base) }
    assert_equal "n" * 200, queue("n" * 200).name
  end

  def test_row_33_wrong_type_key
    q = queue
    q.schedule("k", id: "keep")
    auth_server.command("SET", "rx:{#{qname}}:i", "not a hash")
    err = assert_raises(Reactis::WrongTypeError) { q.stats }
    assert_kind_of Reactis::ReplyError, err
    assert_includes err.message, "rx:{#{qname}}:i"
    assert_includes err.message, "holds a string"
    no_pw_in(err)
    auth_server.command("DEL", "rx:{#{qname}}:i")
    take(q, "keep", "k") # nothing lost
  end

  def test_row_34_stale_and_malformed_tokens
    q = queue
    err = assert_raises(Reactis::StaleDeliveryError) { q.ack("1-1") }
    assert_includes err.message, "no longer pending"
    assert_equal "ESTALE", err.name
    assert_raises(Reactis::StaleDeliveryError) { q.extend_lease("1-1", 1) }
    assert_raises(Reactis::StaleDeliveryError) { q.retry("1-1") }
    ["", "x", "1-", "-1", "1-2-3", "18446744073709551616-0"].each do |bad|
      err = assert_raises(Reactis::InvalidArgumentError) { q.ack(bad) }
      assert_match(/delivery token/, err.message)
    end
    assert_raises(TypeError) { q.ack(12) }
    assert_raises(TypeError) { q.ack(nil) }
  end

  def test_row_35_negative_delay
    q = queue
    q.schedule("l", id: "later")
    before = Time.now.to_f * 1000
    s = q.schedule("n", id: "neg", delay: -5)
    assert_operator s.due_ms, :>=, before - 6000 # due in the past
    assert_operator s.due_ms, :<=, before - 4000
    jobs = q.fetch(max: 10, timeout: 2)
    assert_equal %w[neg later], jobs.map(&:id) # first
    jobs.each(&:ack!)
    s = q.schedule("o", id: "old", at: -0.001) # before 1970
    assert_equal(-1, s.due_ms)
    take(q, "old", "o")
  end

  def test_row_36_absurd_delays
    q = queue
    [{ delay: 1e15 }, { delay: -1e15 }, { at: 253_402_300_800.0 }, { at: -253_402_300_800.0 },
     { at: Time.at(253_402_300_800) }].each do |kw|
      err = assert_raises(Reactis::InvalidArgumentError) { q.schedule("a", id: "abs", **kw) }
      assert_includes err.message, "out of range"
    end
    q.schedule("r", id: "resched", delay: 60)
    assert_raises(Reactis::InvalidArgumentError) { q.reschedule("resched", delay: 1e15) }
    assert q.cancel("resched")
    # Past what a C long long holds, infinite or NaN: Ruby's RangeError
    # (FloatDomainError for the last two).
    [1e300, -1e300, Float::INFINITY, Float::NAN].each do |d|
      assert_raises(RangeError) { q.schedule("a", id: "abs", delay: d) }
    end
    assert_raises(TypeError) { q.schedule("a", id: "abs", delay: "5") }
    s = q.schedule("y", id: "y9999", at: 253_402_300_799.999)
    assert_equal 253_402_300_799_999, s.due_ms
    assert_equal 1, q.stats[:scheduled] # nothing absurd got in
    assert q.cancel("y9999")
  end

  def test_row_37_counts_out_of_range
    q = queue
    [0, 1001, -1, true, 1.5].each do |bad|
      assert_raises(ArgumentError) { q.fetch(max: bad, timeout: 0) }
      assert_raises(ArgumentError) { q.dead_letters(limit: bad) }
    end
    assert_equal [], q.fetch(max: 1000, timeout: 0)
  end

  def test_row_38_queue_options
    err = assert_raises(Reactis::InvalidArgumentError) { Reactis::Queue.new(qname, url: base, visibility_timeout_ms: 5) }
    assert_includes err.message, "10.."
    assert_raises(Reactis::InvalidArgumentError) { Reactis::Queue.new(qname, url: base, visibility_timeout: 0.005) }
    assert_raises(Reactis::InvalidArgumentError) { Reactis::Queue.new(qname, url: base, visibility_timeout: -1) }
    assert_raises(Reactis::InvalidArgumentError) { Reactis::Queue.new(qname, url: base, consumer: "") }
    assert_raises(ArgumentError) { Reactis::Queue.new(qname, url: base, block_cap_ms: -1) }
    err = assert_raises(Reactis::URLError) { Reactis::Queue.new(qname, url: base, visibility: 1000) }
    assert_includes err.message, "unknown option"
    no_pw_in(err)
  end

  # ---------------------------------------------------------------- rows 39-41

  def test_row_39_malformed_templates
    { "user:{id" => "unclosed", "{a}{b}" => "touch", "{1a}" => "bad placeholder name",
      "{a}:{a}" => "twice", "a}b" => "unmatched", "{}" => "bad placeholder name",
      "" => "empty" }.each do |tpl, gist|
      err = assert_raises(Reactis::InvalidArgumentError) { Reactis::Template.new(tpl) }
      assert_includes err.message, gist, tpl
    end
    assert_raises(TypeError) { Reactis::Template.new(nil) }
    # Accepted: binary literals, "{{" and "}}" for braces.
    t = Reactis::Template.new("rx:{{\xff\0}}:{id}".b)
    assert_equal({ id: "42" }, t.match("rx:{\xff\0}:42".b))
    assert_nil t.match("rx:{x}:".b)
  end

  def test_row_40_keyspace_garbage
    ["__keyspace@x__:k", "__keyspace@0__", "__keyevent@0__:", "__keyspace@-1__:k",
     "__keyspace@99999999999__:k", "__KEYSPACE@0__:k", ""].each do |ch|
      assert_nil Reactis::KeyEvent.parse(ch, "del"), ch
    end
    assert_raises(TypeError) { Reactis::KeyEvent.parse(nil, "del") }
    ke = Reactis::KeyEvent.parse("__keyspace@3__:a:\0b", "expired")
    refute_nil ke
    assert_equal 3, ke.db
    assert_equal "a:\0b".b, ke.key
  end

  def test_row_41_after_close
    c = Reactis::Client.new(base)
    c.close
    assert_nil c.close # idempotent
    [-> { c.ping }, -> { c.command("PING") }, -> { c.publish("a", "b") }, -> { c.connect }].each do |call|
      assert_raises(Reactis::StateError, &call)
    end
    refute c.connected?
    no_pw(c.inspect)
    s = Reactis::Subscriber.new(base)
    s.close
    s.close
    [-> { s.subscribe("x") }, -> { s.next_message(timeout: 0.1) }, -> { s.each_message { nil } },
     -> { s.connect }].each do |call|
      assert_raises(Reactis::StateError, &call)
    end
    assert_equal 0, s.subscription_count
    no_pw(s.inspect)
    q = Reactis::Queue.new(qname, url: base)
    q.close
    q.close
    [-> { q.schedule("x") }, -> { q.stats }, -> { q.ack("1-1") }, -> { q.cancel("x") }].each do |call|
      assert_raises(Reactis::StateError, &call)
    end
    # fetch on a closed queue returns [] (closing from another thread is how
    # a waiting fetch ends), and wakeup does nothing.
    assert_equal [], q.fetch(max: 1, timeout: 0.1)
    assert_nil q.wakeup
    no_pw(q.inspect)
  end
end
