# frozen_string_literal: true

module Reactis
  # Base class of every error the library raises. The C core chooses the
  # subclass, so Ruby and Python agree on what went wrong.
  #
  #   Error
  #    +-- ConnectionError            could not connect / resolve, link lost
  #    |    +-- ResolveError
  #    |    +-- ConnectionLostError
  #    |    +-- AuthenticationError   wrong password, unknown ACL user
  #    |    +-- TLSError
  #    |         +-- TLSVerifyError   the certificate could not be verified
  #    +-- TimeoutError               the server did not answer in time
  #    +-- ProtocolError              the peer does not speak RESP
  #    +-- ReplyError                 the server replied with an error
  #    |    +-- WrongTypeError, NoPermissionError, ConfigForbiddenError,
  #    |        ServerOutOfMemoryError, NoScriptError, ReadOnlyError,
  #    |        LoadingError, BusyError
  #    +-- PayloadTooLargeError
  #    +-- InvalidArgumentError       the core refused a value (a flag, an id)
  #    |    +-- URLError              malformed URL or unknown option
  #    +-- OutOfMemoryError
  #    +-- StateError                 the handle is closed or in the wrong state
  #    +-- StaleDeliveryError, NotFoundError   (the queue)
  #    +-- SystemCallError
  #    +-- Interrupted                a call was woken up or interrupted
  #
  # Wrong Ruby arguments (a number where a String belongs, an unknown
  # keyword) raise the usual ArgumentError and TypeError instead.
  class Error < StandardError
    # The C core's status code (negative for errors), e.g. -9.
    attr_reader :code
    # The code's name without prefix, e.g. "EAUTH".
    attr_reader :name

    def initialize(message = nil, code: nil, name: nil)
      super(message)
      @code = code
      @name = name
    end

    # The exception for a status of the C core; called by the C glue
    # (bindings/ruby.i) and by the Ruby classes.
    def self.from_status(code, name, message)
      Reactis.error_class(name, message).new(message, code: code, name: name)
    end
  end

  class ConnectionError < Error; end
  class ResolveError < ConnectionError; end
  class ConnectionLostError < ConnectionError; end
  class AuthenticationError < ConnectionError; end
  class TLSError < ConnectionError; end
  class TLSVerifyError < TLSError; end
  class TimeoutError < Error; end
  class ProtocolError < Error; end
  class ReplyError < Error; end
  class WrongTypeError < ReplyError; end
  class NoPermissionError < ReplyError; end
  # CONFIG is not allowed (managed Redis); the message says how to enable
  # keyspace notifications on that kind of service.
  class ConfigForbiddenError < ReplyError; end
  class ServerOutOfMemoryError < ReplyError; end
  class NoScriptError < ReplyError; end
  class ReadOnlyError < ReplyError; end
  class LoadingError < ReplyError; end
  class BusyError < ReplyError; end
  class PayloadTooLargeError < Error; end
  class InvalidArgumentError < Error; end
  class URLError < InvalidArgumentError; end
  class OutOfMemoryError < Error; end
  class StateError < Error; end
  class StaleDeliveryError < Error; end
  class NotFoundError < Error; end
  class SystemCallError < Error; end
  # Redis Cluster: not a cluster, no node serves the slot, or the cluster
  # kept refusing the command (CLUSTERDOWN, TRYAGAIN, a MOVED or ASK that
  # could not be followed: too many redirections) until the command timeout;
  # the message is the server's last word.
  class ClusterError < Error; end
  # A blocking call was woken up (#wakeup from another thread) or
  # interrupted by a signal whose trap handler did not raise; its reply, if
  # any, was discarded.
  class Interrupted < Error; end

  # C status name -> class, as the core's RX_STATUS_MAP reads. Unknown
  # (newer) codes get the base class.
  ERROR_CLASSES = {
    "ENOMEM" => OutOfMemoryError,
    "EINVAL" => InvalidArgumentError,
    "EURL" => URLError,
    "ERESOLVE" => ResolveError,
    "ECONNECT" => ConnectionError,
    "ETIMEDOUT" => TimeoutError,
    "EIO" => ConnectionLostError,
    "EPROTO" => ProtocolError,
    "EAUTH" => AuthenticationError,
    "ETLS" => TLSError,
    "ETLSVERIFY" => TLSVerifyError,
    "EREPLY" => ReplyError,
    "EWRONGTYPE" => WrongTypeError,
    "ENOPERM" => NoPermissionError,
    "ECONFIG" => ConfigForbiddenError,
    "EOOM" => ServerOutOfMemoryError,
    "ENOSCRIPT" => NoScriptError,
    "ETOOBIG" => PayloadTooLargeError,
    "ESTATE" => StateError,
    "ESTALE" => StaleDeliveryError,
    "ENOTFOUND" => NotFoundError,
    "ESYS" => SystemCallError,
    "EREADONLY" => ReadOnlyError,
    "ELOADING" => LoadingError,
    "EBUSY" => BusyError,
    "ECLUSTER" => ClusterError,
    "WOKEN" => Interrupted,
    "EINTR" => Interrupted
  }.freeze

  # Error replies inside arrays (EXEC) reach Ruby unclassified; their first
  # word says what they are, as the core's own mapping does.
  REPLY_ERROR_CLASSES = {
    "WRONGTYPE" => WrongTypeError,
    "NOPERM" => NoPermissionError,
    "OOM" => ServerOutOfMemoryError,
    "NOSCRIPT" => NoScriptError,
    "READONLY" => ReadOnlyError,
    "LOADING" => LoadingError,
    "BUSY" => BusyError,
    "NOAUTH" => AuthenticationError,
    "WRONGPASS" => AuthenticationError,
    "CLUSTERDOWN" => ClusterError,
    # What rx_cluster_call reports as RX_ECLUSTER, so an EXEC element or a
    # single-node Client pointed at a cluster node says the same.
    "TRYAGAIN" => ClusterError,
    "MOVED" => ClusterError,
    "ASK" => ClusterError
  }.freeze

  # The class for a C status name ("EAUTH").
  def self.error_class(name, message = nil)
    cls = ERROR_CLASSES.fetch(name.to_s, Error)
    if cls == ReplyError && message
      cls = REPLY_ERROR_CLASSES.fetch(message.to_s.split(" ", 2).first.to_s, ReplyError)
    end
    cls
  end
end
